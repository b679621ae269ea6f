"""erlnode: make a Python program a node of an Erlang cluster."""
