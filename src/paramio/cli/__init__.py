"""Command-line tools. They parse flags and call the library; nothing else."""
