"""The sans-IO RTP media library: packets, RTCP, G.711 and other codecs, tones, DTMF, mixing.

Nothing here imports asyncio, socket or time: the media server owns the sockets and
the clock and passes bytes, samples and times in.
"""
