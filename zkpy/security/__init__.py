"""Security at the edges: TLS contexts, x509 ids, JAAS files, SASL mechanisms.

Nothing here touches sockets or the event loop (but tls_layer.py, TLS over
an asyncio transport).  The transport builds its
``ssl.SSLContext`` objects with :mod:`zkpy.security.tls`, turns the peer
certificate into auth ids with :mod:`zkpy.security.x509`, and drives a SASL
mechanism from :mod:`zkpy.security.sasl` with the tokens of opcode 102
requests; ACL checks only ever see the resulting ``(scheme, id)`` pairs.
"""
