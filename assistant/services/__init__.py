"""Project-level operations the web app and the CLI share."""
