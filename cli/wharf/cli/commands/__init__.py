"""The CLI's command groups; ``wharf.cli.commandtree`` names each command and imports it
when it is used."""
