"""Packet decoders that feed the tracker.

``native`` is the compiled engine (csrc/): it frames and decodes pcap/pcapng itself.
``pyshark`` (:mod:`analyzer.engines.pyshark_engine`) lets tshark's dissectors decode the
packets and feeds the same tracker segment by segment: slower, but it reads every
encapsulation and file format Wireshark knows (GRE, GTP, VXLAN, IP-in-IP, Teredo, ...),
and it is a cross-check of the native decoder.

Each engine is imported only when used: pyshark and tshark are optional.
"""

from __future__ import annotations

from typing import Final

ENGINES: Final = ("native", "pyshark")
