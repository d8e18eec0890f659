# The stack's registry (docker-compose.dev.yml): Debian's docker-registry (CNCF distribution
# 2.8, what `make up` runs on a host) on the seeded Debian base, no Docker Hub image; the
# daemons' docker.io mirror. Build context: this folder (registry.yml).
ARG BASE_IMAGE=127.0.0.1:5000/library/debian:bookworm-slim
FROM ${BASE_IMAGE}

# busybox-static: `busybox wget` for the healthcheck. The package's postinst would start its
# own service (htpasswd auth, its own config): a policy-rc.d refuses it during the build.
RUN printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        docker-registry busybox-static \
 && rm -rf /var/lib/apt/lists/* /usr/sbin/policy-rc.d

COPY registry.yml /etc/wharf-registry.yml
# The package's own account, not root; the data (a volume) at the package's path.
USER docker-registry
EXPOSE 5000
CMD ["docker-registry", "serve", "/etc/wharf-registry.yml"]
# What a rebuild leaves untagged is found by this label (tests/integration/test_dev_stack.py
# prunes it: docker image prune --filter label=wharf.dev-stack).
LABEL wharf.dev-stack=wharf-dev-registry
