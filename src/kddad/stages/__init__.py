"""One function per pipeline stage (config in, files out), and the chain of them without DVC."""
