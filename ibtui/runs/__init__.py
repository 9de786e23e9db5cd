"""Run store, scheduler and worker entry point."""
