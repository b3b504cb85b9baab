"""The offer as the server accepts it: parsed, checked, and cut down to the one video codec
and Opus that it forwards (both legs of a forwarded stream must use the same codec)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from aiortc import RTCRtpCodecParameters, sdp

from rtp.types import SOURCE_KIND, Source

from .api import NegotiationError


def _is_rtx(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower() == "video/rtx"


def _video_matches(codec: RTCRtpCodecParameters, video_codec: str) -> bool:
    mime = codec.mimeType.lower()
    if video_codec == "VP8":
        return mime == "video/vp8"
    params = codec.parameters
    return (
        mime == "video/h264"
        and str(params.get("packetization-mode", "0")) == "1"
        and str(params.get("profile-level-id", "")).lower()[:2] == "42"
    )


def parse_offer(offer_sdp: str) -> sdp.SessionDescription:
    """Parse an SDP offer, turning any parser failure into NegotiationError('bad-sdp')."""
    if not isinstance(offer_sdp, str) or "m=" not in offer_sdp:
        raise NegotiationError("bad-sdp", "the offer is not an SDP with media sections")
    try:
        description = sdp.SessionDescription.parse(offer_sdp)
    except Exception as exc:  # aiortc raises assorted ValueError/IndexError/KeyError
        raise NegotiationError("bad-sdp", f"the offer SDP does not parse: {exc!r}") from exc
    for media in description.media:
        if media.kind in ("audio", "video") and not media.rtp.muxId:
            raise NegotiationError("bad-sdp", "every audio/video m-line needs a=mid")
        if media.kind in ("audio", "video") and (media.ice is None or media.dtls is None):
            raise NegotiationError("bad-sdp", f"m-line {media.rtp.muxId} lacks ICE or DTLS")
    return description


def restrict_codecs(description: sdp.SessionDescription, video_codec: str) -> None:
    """Keep only Opus and the server's one video codec (+ its RTX) in every m-line.

    Both legs of a forwarded stream must use the same codec, and aiortc freezes codecs at
    the first negotiation, so the server accepts exactly one video codec.
    """
    for media in description.media:
        if media.kind == "audio":
            kept = [c for c in media.rtp.codecs if c.mimeType.lower() == "audio/opus"]
            wanted = "Opus"
        elif media.kind == "video":
            base = [c for c in media.rtp.codecs if _video_matches(c, video_codec)]
            # prefer constrained baseline for H.264
            base.sort(key=lambda c: str(c.parameters.get("profile-level-id", "")) != "42e01f")
            base = base[:1]
            pts = {c.payloadType for c in base}
            rtx = [c for c in media.rtp.codecs if _is_rtx(c) and c.parameters.get("apt") in pts]
            kept = base + rtx
            wanted = video_codec
        else:
            continue
        if media.port == 0:
            continue  # rejected / stopped m-line
        if not any(not _is_rtx(c) for c in kept):
            offered = sorted({c.mimeType for c in media.rtp.codecs if not _is_rtx(c)})
            raise NegotiationError(
                "no-common-codec",
                f"m-line {media.rtp.muxId} ({media.kind}) offers {offered}; "
                f"this server forwards only {wanted}",
            )
        media.rtp.codecs = kept
        media.fmt = [c.payloadType for c in kept]


def check_track_map(
    description: sdp.SessionDescription,
    published: Mapping[str, Source],
    *,
    earlier: Mapping[str, Source],
    receive_slots: Collection[str],
) -> None:
    """The offer's `tracks` map must name exactly its sending m-lines, each with a source of
    the m-line's kind, none twice; a mid keeps its source, and a receive slot never sends."""
    media_by_mid = {m.rtp.muxId: m for m in description.media if m.kind in ("audio", "video")}
    seen: set[str] = set()
    for mid, source in published.items():
        if source not in SOURCE_KIND:
            raise NegotiationError("bad-track-map", f"unknown source {source!r}")
        if source in seen:
            raise NegotiationError("bad-track-map", f"source {source} mapped twice")
        seen.add(source)
        media = media_by_mid.get(mid)
        if media is None:
            raise NegotiationError("bad-track-map", f"no m-line with mid {mid!r}")
        if media.kind != SOURCE_KIND[source]:
            raise NegotiationError(
                "bad-track-map",
                f"mid {mid} is {media.kind} but {source} needs {SOURCE_KIND[source]}",
            )
        if media.direction not in ("sendonly", "sendrecv") or media.port == 0:
            raise NegotiationError(
                "bad-track-map", f"mid {mid} ({source}) is {media.direction}, not sending"
            )
        if earlier.get(mid, source) != source:
            raise NegotiationError("bad-track-map", f"mid {mid} changed its source")
    for mid, media in media_by_mid.items():
        if mid not in published and media.direction == "sendonly" and media.port != 0:
            raise NegotiationError(
                "bad-track-map", f"mid {mid} sends {media.kind} but is not in the track map"
            )
    for mid in receive_slots:
        if mid in published:
            raise NegotiationError("bad-track-map", f"mid {mid} is a receive slot")
