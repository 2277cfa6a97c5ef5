"""opsconsole: live health and guided runbooks for on-call engineers."""

__version__ = "0.1.0"
