"""The WSGI entry point each server worker imports: the app, configured from ``MOCKSERVER_*``,
behind the guard that bounds slow bodies and oversized heads."""

from mockserver.app import create_app
from mockserver.config import Config
from mockserver.guard import Guard

config = Config.from_env()
app = Guard(
    create_app(config),
    max_body_bytes=config.max_body_bytes,
    body_timeout_s=config.body_timeout_s,
    work_slots=config.work_slots,
)
