"""The room's modules (web/js/room/) each work on their own, with a fake session passed in:
no media, no socket, one page. What the whole room does with a real server is in
test_meeting_room.py; this checks that the parts stand alone (explicit inputs, no import of
the router) and the rules they carry: grid shape, who takes the stage, the speaking hold,
the unread count, the people list, the connection pill."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import Server
from tests.browser.pages import open_person

pytestmark = pytest.mark.browser

# A fake session with only what the modules read; two people besides me, Bo sharing a screen.
CHECKS = """async () => {
  const tiles = await import('/static/js/room/tiles.js');
  const speaking = await import('/static/js/room/speaking.js');
  const people = await import('/static/js/room/people.js');
  const chat = await import('/static/js/room/chat.js');
  const status = await import('/static/js/room/status.js');
  const panels = await import('/static/js/room/panels.js');
  const on = {microphone: true, camera: true, screen: false};
  const person = (pid, user_id, display_name, role, media) =>
    ({participant_id: pid, user_id, display_name, role, media});
  const participants = new Map([
    ['p-bo', person('p-bo', 2, 'Bo Berg', 'participant', {...on, screen: true})],
    ['p-cy', person('p-cy', 3, 'Cy Costa', 'host', {...on, microphone: false})],
  ]);
  const session = {
    welcome: {participant_id: 'p-ana', you: person('p-ana', 1, 'Ana Alves', 'participant', on)},
    participantId: 'p-ana', media: on, participants, pc: null, slots: [], chat: [],
    localTracks: {},
    tracksOf: (pid) => pid === 'p-bo' ? {screen: {slot: {mid: '3'}, track: null}} : {},
    transceiverFor: () => null,
    sendChat: async () => ({}),
  };
  const data = (el) => el.dataset;
  const testid = (el, id) => el.querySelector(`[data-testid="${id}"]`);
  const out = {};

  out.shapes = [1, 2, 4, 5, 9, 10].map((n) => tiles.gridShape(n));
  const views = tiles.tileViews(session, 'me');
  out.stage = views.stage && views.stage.key;
  out.grid = views.grid.map((v) => `${v.key}|${v.name}|${v.participantId}`);
  session.localTracks = {screen: {}};  // my own screen too: Bo's stays on the stage
  const both = tiles.tileViews(session, 'me');
  out.stageWithMine = both.stage && both.stage.key;
  out.gridWithMine = both.grid.map((v) => v.key);
  session.localTracks = {};

  const shown = tiles.createTiles();
  shown.show(views, (pid) => pid === 'p-cy' || pid === 'self');
  out.stageHidden = shown.stage.hidden;
  out.strip = shown.grid.classList.contains('strip');
  out.gridTiles = [...shown.grid.children].map((el) => [
    data(el).participantId, data(el).source, data(el).mic, data(el).speaking,
    el.getAttribute('aria-label')]);
  out.stageTile = [...shown.stage.children].map((el) => [data(el).participantId, data(el).source]);
  out.nameOfCy = shown.nameOf('p-cy');
  shown.show({stage: null, grid: views.grid.filter((v) => v.pid !== 'p-bo')}, () => false);
  out.afterLeaving = {
    stageHidden: shown.stage.hidden, strip: shown.grid.classList.contains('strip'),
    count: data(shown.grid).count, cols: shown.grid.style.getPropertyValue('--cols')};

  out.level = [speaking.levelBetween(undefined, {energy: 1, duration: 1}),
               speaking.levelBetween({energy: 1, duration: 1}, {energy: 1.04, duration: 2}),
               speaking.levelBetween({energy: 1, duration: 2}, {energy: 1, duration: 2})];
  const who = speaking.createSpeaking(session);
  await who.poll();  // no peer connection, no microphone: nobody
  out.silent = who.isSpeaking('p-bo');
  who.heard('p-bo', 1000);
  const hold = speaking.SPEAKING_HOLD_MS;
  out.hold = [who.isSpeaking('p-bo', 1000 + hold - 1), who.isSpeaking('p-bo', 1000 + hold)];

  out.rows = people.peopleRows(session).map((p) => `${p.pid}|${p.name}|${p.role}|${p.self}`);
  const list = people.createPeople({session});
  list.render();
  const first = testid(list.panel, 'participant-item');
  list.render();  // nothing changed: the same elements stay
  out.peopleItems = [...list.panel.querySelectorAll('[data-testid="participant-item"]')]
    .map((li) => [data(li).participantId, data(testid(li, 'state-mic')).on,
                  !!testid(li, 'state-screen'), li.textContent]);
  out.peopleKept = testid(list.panel, 'participant-item') === first;

  const room = document.createElement('section');
  document.body.append(room);
  const talk = chat.createChat({session, enabled: true});
  const ppl = people.createPeople({session});
  room.append(talk.panel, ppl.panel, talk.button, ppl.button);
  panels.connectPanels(room, [talk, ppl]);
  const message = (id, user_id, display_name) => ({
    id, author: {user_id, display_name}, text: `hello ${id}`, kind: 'text',
    created_at: new Date().toISOString()});
  talk.received(message(1, 2, 'Bo Berg'));
  talk.received(message(2, 1, 'Ana Alves'));  // my own: not unread
  talk.received(message(3, 3, 'Cy Costa'));
  const badge = testid(talk.button, 'chat-unread');
  out.unread = [badge.textContent, badge.hidden, talk.button.getAttribute('aria-label')];
  out.mine = [...talk.panel.querySelectorAll('[data-testid="chat-message"]')]
    .map((li) => li.className);
  const expanded = (button) => button.getAttribute('aria-expanded');
  const panelOpen = () => room.classList.contains('panel-open');
  talk.button.click();
  const focused = document.activeElement;
  out.chatOpen = [talk.panel.hidden, expanded(talk.button), badge.hidden, focused && focused.id];
  ppl.button.click();  // one panel at a time
  out.peopleOpen = [talk.panel.hidden, ppl.panel.hidden, expanded(talk.button), panelOpen()];
  ppl.panel.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape', bubbles: true}));
  out.escaped = [ppl.panel.hidden, panelOpen(), document.activeElement === ppl.button];
  room.remove();

  out.pills = ['connected', 'disconnected', 'connecting', 'new', 'failed']
    .map((s) => status.mediaConnectionPill(s));
  const line = status.createStatus();
  line.show({people: 3, recording: true});
  line.setConnection(status.RECONNECTING);
  out.status = [line.count.textContent, line.recording.hidden,
                data(line.connection).state, line.connection.textContent];
  line.dispose();
  return out;
}"""


def test_room_modules_work_on_their_own(browser: Any, contexts: list[Any], server: Server) -> None:
    page = open_person(browser, contexts, server)
    page.goto("/")
    expect(page.get_by_test_id("signin-page")).to_be_visible()
    out = page.evaluate(CHECKS)

    # Grid: 1, 2x2, 3x3, then 4 columns; on a phone 1 column up to two tiles, then 2 or 3.
    assert [(s["cols"], s["rows"]) for s in out["shapes"]] == [
        (1, 1),
        (2, 1),
        (2, 2),
        (3, 2),
        (3, 3),
        (4, 3),
    ]
    assert [(s["phoneCols"], s["phoneRows"]) for s in out["shapes"]] == [
        (1, 1),
        (1, 2),
        (2, 2),
        (2, 3),
        (3, 3),
        (3, 4),
    ]

    # Bo's screen on the stage; the grid holds my camera first, then everybody's.
    assert out["stage"] == "p-bo:screen"
    assert out["grid"] == [
        "self:camera|Ana Alves (you)|p-ana",
        "p-bo:camera|Bo Berg|p-bo",
        "p-cy:camera|Cy Costa|p-cy",
    ]
    # Another person's screen wins over my own, which goes to the strip.
    assert out["stageWithMine"] == "p-bo:screen"
    assert out["gridWithMine"] == ["self:screen", "self:camera", "p-bo:camera", "p-cy:camera"]

    # The elements: the stage shown, the grid a strip; mic state, speaking (only with the
    # microphone on: Cy "speaks" muted and is not highlighted), names for announcements.
    assert out["stageHidden"] is False and out["strip"] is True
    assert out["stageTile"] == [["p-bo", "screen"]]
    assert out["gridTiles"] == [
        ["p-ana", "camera", "on", "true", "Ana Alves (you), speaking"],
        ["p-bo", "camera", "on", "false", "Bo Berg"],
        ["p-cy", "camera", "off", "false", "Cy Costa, microphone off"],
    ]
    assert out["nameOfCy"] == "Cy Costa"
    assert out["afterLeaving"] == {"stageHidden": True, "strip": False, "count": "2", "cols": "2"}

    # Speaking: RMS between two readings of the decoder's totals; held for SPEAKING_HOLD_MS.
    assert out["level"][0] is None and out["level"][2] is None
    assert abs(out["level"][1] - 0.2) < 1e-9
    assert out["silent"] is False
    assert out["hold"] == [True, False]

    # People: me first, roles and media states; an unchanged list is not rebuilt.
    assert out["rows"] == [
        "p-ana|Ana Alves (you)|participant|true",
        "p-bo|Bo Berg|participant|false",
        "p-cy|Cy Costa|host|false",
    ]
    assert [item[:3] for item in out["peopleItems"]] == [
        ["p-ana", "true", False],
        ["p-bo", "true", True],
        ["p-cy", "false", False],
    ]
    assert out["peopleItems"][2][3].startswith("Cy Costahost")
    assert out["peopleKept"] is True

    # Chat: others' messages count as unread while the panel is closed, mine do not.
    assert out["unread"] == ["2", False, "Chat, 2 unread"]
    assert out["mine"] == ["", "mine", ""]
    assert out["chatOpen"] == [False, "true", True, "chat-input"]
    assert out["peopleOpen"] == [True, False, "false", True]
    assert out["escaped"] == [True, False, True]

    # Status: the pill for each peer connection state; the head count and recording pill.
    assert out["pills"] == [
        ["connected", "Connected"],
        ["unstable", "Media connection unstable…"],
        ["connecting", "Connecting media…"],
        ["connecting", "Connecting media…"],
        None,
    ]
    assert out["status"] == ["3 in the meeting", False, "reconnecting", "Reconnecting…"]
