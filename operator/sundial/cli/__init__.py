"""The commands: `sundial` (run, preview, crd, deploy) and the `kubectl sundial` plugin."""
