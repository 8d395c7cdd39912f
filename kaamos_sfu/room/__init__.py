"""The room core: calls made of participants, below any transport.

`Room` holds one call's participants and the tracks they publish, and turns commands
(join, leave, publish, unpublish, mute) into messages and subscriptions; `RoomManager`
admits participants against the room registry and removes them. A participant is anything
that implements `Participant`: the WebRTC peer of a browser (kaamos_sfu/webrtc/), a test
fake, a recorder.
"""

from .leave_reasons import LeaveReason, close_code
from .manager import JoinRefused, RoomManager, ServerDraining
from .participant import Participant, PublishedTrack, TrackKey, new_participant_id
from .room import Room

__all__ = [
    "JoinRefused",
    "LeaveReason",
    "Participant",
    "PublishedTrack",
    "Room",
    "RoomManager",
    "ServerDraining",
    "TrackKey",
    "close_code",
    "new_participant_id",
]
