"""The reports' PNG charts: the funnel, the pipeline and the aging (one chart per currency), the returns."""

from __future__ import annotations

import pandas as pd

from .reports_after_sale import _returns_chart

CHARTS = ("pipeline", "funnel", "aging", "returns")


def _short_money(value: float, _pos: int) -> str:
    if abs(value) < 0.5:
        return "0"  # never "-0" (matplotlib's ticks around zero are ±0.0)
    for size, unit in ((1e9, "bn"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:,.1f} {unit}".replace(".0 ", " ")
    return f"{value:,.0f}"


def chart(name: str, df: pd.DataFrame, path) -> None:
    """A PNG chart of the funnel, the pipeline (weighted forecast by stage), the aging or the returns
    (units per month by what became of them, and warranty claims)."""
    import matplotlib.pyplot as plt

    if name in ("pipeline", "aging") and "currency" in df and df["currency"].nunique() > 1:
        _per_currency(name, df, path)  # amounts in different currencies are never added together
        return
    fig = figure(name, df)
    fig.savefig(path, format="png")
    plt.close(fig)


def figure(name: str, df: pd.DataFrame):
    """The chart of one currency as a matplotlib figure: counts on whole-number axes, amounts from
    zero up, no "-0" label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    currency = df["currency"].iloc[0] if "currency" in df and len(df) else ""
    if name == "funnel":
        bars = ax.barh(df["step"][::-1], df["deals"][::-1], color="#1f4e79")
        ax.bar_label(bars, labels=[f"{d}" + (f"  ({c}%)" if c == c and c is not None else "")
                                   for d, c in zip(df["deals"][::-1], df["conversion_pct"][::-1], strict=True)],
                     padding=3)
        ax.set_xlabel("deals")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlim(left=0)
        ax.set_title("Conversion funnel")
    elif name == "pipeline":
        by_stage = df.groupby("stage", sort=False)[["amount", "weighted"]].sum()
        xs = range(len(by_stage))
        ax.bar([x - 0.2 for x in xs], [float(v) for v in by_stage["amount"]], 0.4, label="expected amount",
               color="#9dc3e6")
        ax.bar([x + 0.2 for x in xs], [float(v) for v in by_stage["weighted"]], 0.4, label="weighted forecast",
               color="#1f4e79")
        ax.set_xticks(list(xs), by_stage.index, rotation=20)
        ax.yaxis.set_major_formatter(FuncFormatter(_short_money))
        ax.legend()
        ax.set_ylabel(f"amount ({currency})")
        ax.set_ylim(bottom=0)
        ax.set_title(f"Pipeline by stage ({currency})")
    elif name == "aging":
        bars = ax.bar(df["bucket"], [float(v) for v in df["amount_due"]], color="#c55a11")
        ax.bar_label(bars, labels=[f"{v:,.0f}" for v in df["amount_due"]], padding=2)
        ax.set_xlabel("days past due")
        ax.set_ylabel(f"amount due ({currency})")
        ax.yaxis.set_major_formatter(FuncFormatter(_short_money))
        ax.set_ylim(bottom=0)
        ax.set_title(f"Receivables aging ({currency})")
    elif name == "returns":
        _returns_chart(ax, df)
    else:
        plt.close(fig)
        from models import ValidationError
        raise ValidationError("png", f"charts exist for {', '.join(CHARTS)}")
    fig.tight_layout()
    return fig


def _per_currency(name: str, df: pd.DataFrame, path) -> None:
    """The pipeline or aging chart as one image of several, one chart per currency."""
    import tempfile
    from pathlib import Path

    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    currencies = sorted(df["currency"].unique())
    fig, axes = plt.subplots(len(currencies), 1, figsize=(8, 4.5 * len(currencies)), dpi=100)
    with tempfile.TemporaryDirectory() as tmp:
        for ax, currency in zip(axes, currencies, strict=True):
            part = Path(tmp) / f"{currency}.png"
            chart(name, df[df["currency"] == currency].reset_index(drop=True), part)
            ax.imshow(mpimg.imread(part))
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)
