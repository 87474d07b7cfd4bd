"""Episode bags, the whole public API in one import (a facade; the code lives in four modules).

==================================  ==========================================================
module                              holds
==================================  ==========================================================
:mod:`arm_perception.bag_format`    the contract: topics, message types, frame ids, joint
                                    names, ``PARTIAL_SUFFIX``, the format version,
                                    :class:`BagError`, :class:`BagWarning`, :class:`Episode`.
                                    No ``rosbags`` import; the format is documented there.
:mod:`arm_perception.bag_codec`     the rosbags type store, offered QoS, building and decoding
                                    messages
:mod:`arm_perception.bag_writer`    :class:`EpisodeWriter`, :class:`RawEpisodeWriter`,
                                    :func:`write_episode`, fsync helpers (crash-safe staging)
:mod:`arm_perception.bag_reader`    :func:`read_episode`, :func:`iter_episodes`,
                                    :func:`is_bag_dir` and helpers for other bag readers
==================================  ==========================================================

``from arm_perception.bags import X`` keeps working for every name below; new code imports from
the module that holds the name (and code that must not load ``rosbags`` from
:mod:`~arm_perception.bag_format`).
"""

from __future__ import annotations

from .bag_codec import LATCHED_QOS, OFFERED_QOS, TYPESTORE
from .bag_format import *  # noqa: F403 - the whole contract
from .bag_format import __all__ as _FORMAT
from .bag_reader import is_bag_dir, iter_episodes, read_episode
from .bag_writer import EpisodeWriter, RawEpisodeWriter, fsync_dir, write_episode

__all__ = [
    *_FORMAT,
    "EpisodeWriter",
    "LATCHED_QOS",
    "OFFERED_QOS",
    "RawEpisodeWriter",
    "TYPESTORE",
    "fsync_dir",
    "is_bag_dir",
    "iter_episodes",
    "read_episode",
    "write_episode",
]
