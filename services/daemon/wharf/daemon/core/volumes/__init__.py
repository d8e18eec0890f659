"""Volumes: named and anonymous volumes of the ``local`` driver, and the mounts of containers.

``options`` (names, driver options), ``mountspec`` (Binds/Mounts/Tmpfs/Config.Volumes → mount
points) and ``filters`` are pure; ``store`` keeps volumes in the state store and under
``<data-root>/volumes``; ``hostmount`` mounts the local driver's tmpfs/bind volumes;
``populate`` seeds a new volume with the image's content; ``service`` adds events;
``transfer`` exports and imports a volume's data as a tar.
"""
