"""dwfuse."""
