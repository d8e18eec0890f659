"""The CLI's command groups; ``wharf.cli.main`` registers each module's commands explicitly."""
