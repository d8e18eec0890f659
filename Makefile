# wharf: set-up and operations. Thin targets over the scripts in infra/ (docs/operations.md).
# Run as root on Debian 12. Every target is idempotent: a second run only redoes what changed.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.NOTPARALLEL:
.DEFAULT_GOAL := help

# Overridable on the command line or from the environment (make up WHARF_REGISTRY_PORT=5055).
WHARF_REGISTRY_PORT ?= 5000
WHARF_DATA_ROOT ?= /var/lib/wharf
WHARF_RUN_DIR ?= /run/wharf
WHARF_LOG_DIR ?= /var/log/wharf
export WHARF_REGISTRY_PORT WHARF_DATA_ROOT WHARF_RUN_DIR WHARF_LOG_DIR

PYTEST_ARGS ?=
# The demo talks to the daemon `make up` started, whatever WHARF_HOST says elsewhere.
WHARF := WHARF_HOST=unix://$(WHARF_RUN_DIR)/wharfd.sock .venv/bin/wharf

.PHONY: help setup images images-debian up down demo test rabbitmq postgres dockerd cluster-up cluster-down certs

help:
	@echo "make setup          install Debian packages, .venv, wharf commands, /etc/wharf/daemon.json"
	@echo "make images         build busybox + hello-world and push them to the local registry"
	@echo "make images-debian  the same for debian:bookworm-slim (debootstrap; needs the network once)"
	@echo "make up / down      start / stop the local registry (127.0.0.1:$(WHARF_REGISTRY_PORT)) and wharfd"
	@echo "make demo           setup + images + up, then pull hello-world, list images, run it"
	@echo "make test           setup + images + up + RabbitMQ + PostgreSQL + dockerd, then pytest (PYTEST_ARGS=...)"
	@echo "make rabbitmq       RabbitMQ running, with the control plane's vhost and users (/etc/wharf/amqp.env)"
	@echo "make postgres       PostgreSQL for gateways sharing their records (/etc/wharf/gateway-db.env)"
	@echo "make dockerd        install docker.io, start dockerd for the interop tests (no iptables, forwarding, bridge)"
	@echo "make cluster-up     gateway + NODES=3 daemons in network namespaces; writes .wharf/cluster.env"
	@echo "                    BROKERS=3: on a RabbitMQ cluster of 3 brokers with quorum queues"
	@echo "                    GATEWAYS=2: two gateways (ports 8480, 8481) sharing PostgreSQL"
	@echo "make cluster-down   stop that cluster and remove its containers, namespaces and queues"
	@echo "make certs          CA + server + client certificates for wharfd on TCP with TLS (CERT_DIR=/etc/wharf/tls CERT_HOSTS=a,b)"

setup:
	@infra/setup.sh

# The registry must answer before anything is pushed.
images: setup
	@infra/up.sh registry
	@infra/images/seed.sh busybox hello-world

images-debian: setup
	@infra/up.sh registry
	@infra/images/seed.sh debian

up: setup
	@infra/up.sh

down:
	@infra/down.sh

rabbitmq: setup
	@infra/rabbitmq.sh

# Several gateways keep their commands, results and idempotency keys in one PostgreSQL.
postgres: setup
	@infra/postgres.sh

# The Docker-interop tests `docker load` what wharf saves; dockerd leaves networking to wharfd.
# It installs docker.io itself: only the tests need it, not every host `make setup` prepares.
dockerd:
	@infra/dockerd.sh

# A local cluster: gateway + NODES daemons, each in its own network namespace (docs/cluster.md);
# BROKERS > 1 puts the control plane on a RabbitMQ cluster of that many brokers.
NODES ?= 3
BROKERS ?= 1
GATEWAYS ?= 1
cluster-up: setup images
	@WHARF_CLUSTER_BROKERS=$(BROKERS) WHARF_CLUSTER_GATEWAYS=$(GATEWAYS) infra/cluster.sh up $(NODES)

cluster-down:
	@infra/cluster.sh down

# CERT_DIR (default /etc/wharf/tls) and CERT_HOSTS (server SANs) pass through; docs/tls.md.
certs:
	@CERT_DIR="$(CERT_DIR)" CERT_HOSTS="$(CERT_HOSTS)" infra/certs.sh

demo: setup images up
	$(WHARF) pull hello-world
	$(WHARF) image ls
	$(WHARF) run hello-world

# pytest's exit status is kept in .cache/ci/pytest.rc for .ci/run (5 = no tests collected).
test: setup images up rabbitmq postgres dockerd
	@mkdir -p .cache/ci; rm -f .cache/ci/pytest.rc; rc=0; \
	.venv/bin/pytest $(PYTEST_ARGS) || rc=$$?; \
	echo "$$rc" > .cache/ci/pytest.rc; \
	if [ "$$rc" -eq 5 ]; then echo "make test: pytest collected no tests" >&2; fi; \
	exit "$$rc"
