"""dealflow's command line and the scripted demo: the top floor, over flows/, tasks/ and models/."""
