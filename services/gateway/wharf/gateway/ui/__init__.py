"""The dashboard (docs/dashboard.md): its static files in ``static/``, served at ``/ui/`` by
:mod:`wharf.gateway.ui.pages`; everything it shows comes from the API with the token it asks
for."""
