"""The practice simulator (`speech-coach simulate`): simulated learners through the real platform."""
