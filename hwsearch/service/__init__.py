"""The user-facing side: the ``hwsearch`` CLI, front queries and export."""
