"""What every runner of the stack shares: the topology (components, ports), how to wait for
something, how to ask Prometheus, and the stack-control interface (``control.StackControl``) that
scenarios, labs and reports act through, with its Compose backend (``compose``). The native backend
is ``lab.control``."""
