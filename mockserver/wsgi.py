"""The WSGI entry point each server worker imports: the app, configured from ``MOCKSERVER_*``."""

from mockserver.app import create_app

app = create_app()
