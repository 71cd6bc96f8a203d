"""The network between nodes: a node's folder, keys and trust (:mod:`.node`), the
signed and encrypted packet format (:mod:`.packet`, :mod:`.crypto`), the nightly
synchronization (:mod:`.sync`) and a whole night of the network (:mod:`.night`)."""
