"""Alert webhook sink: records Alertmanager notifications and lists them over HTTP."""
