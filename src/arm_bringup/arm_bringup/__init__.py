"""Launch files, parameters, launcher, recorder, episode runner and the arm CLI."""
