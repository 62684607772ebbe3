"""What a client's request body holds, below every package that reads one:
the endpoint names and the texts the model reads (the checks' one extraction)."""
