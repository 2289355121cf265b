"""The ray backend (see ``client``): options, replica, keeper, client, security."""
