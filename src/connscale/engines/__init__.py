"""I/O engines that run the sans-I/O protocol core on real sockets."""
