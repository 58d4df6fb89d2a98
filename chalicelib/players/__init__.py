"""Players: physical frames reporting shown artworks over MQTT (DESIGN §4).

``schema`` validates reports, ``directory`` registers players, ``pipeline`` records
reports, ``acks`` tells a player what became of its report when it asks.
"""
