"""Pure building blocks: no I/O, no threads, no sockets."""
