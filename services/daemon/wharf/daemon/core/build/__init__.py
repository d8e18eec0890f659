"""Building images: the Dockerfile front end, the build context and (to come) the builder."""
