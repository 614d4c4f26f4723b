"""aiortc bots: many publishers and subscribers per process, with client-side metrics."""
