"""Container networking: netns/veth/bridge (netlink), IPAM, published ports, embedded DNS."""
