"""Where media goes on the network: the addresses and port range of the media sockets and
their NAT 1:1 announced addresses (`addresses`), and TURN REST credentials (`turn`)."""
