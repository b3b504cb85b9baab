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


# Twelve people (me and p-01 … p-11), for the views: gallery pages, the stage and its strip,
# pins, what the page asks the server for, and who speaks.
VIEWS = """async () => {
  const tiles = await import('/static/js/room/tiles.js');
  const view = await import('/static/js/room/view.js');
  const receive = await import('/static/js/room/receive.js');
  const on = {microphone: true, camera: true, screen: false};
  const ids = Array.from({length: 11}, (_, i) => `p-${String(i + 1).padStart(2, '0')}`);
  const participants = new Map(ids.map((pid, i) => [pid, {
    participant_id: pid, user_id: i + 2, display_name: `Person ${i + 1}`, role: 'participant',
    media: {...on}}]));
  const received = new Set(['p-03', 'p-07']);  // whose camera the server forwards now
  const session = {
    welcome: {participant_id: 'p-me', you: {display_name: 'Me'}},
    participantId: 'p-me', media: on, participants, localTracks: {},
    tracksOf: (pid) => received.has(pid) ? {camera: {slot: {mid: pid}, track: {}}} : {},
  };
  const choice = (extra) => ({view: 'gallery', page: 0, pageSize: 9, stripSize: 4,
                              pinned: null, speakers: null, ...extra});
  const ids_ = (views) => views.grid.map((v) => v.participantId);
  const summary = (views) => ({layout: views.layout, stage: views.stage && views.stage.key,
    grid: ids_(views), page: views.page, pages: views.pages, notShown: views.notShown});
  const out = {};

  out.pageSizes = [[1904, 900], [1264, 580], [1008, 460], [350, 520], [100, 100]]
    .map(([w, h]) => view.pageSizeFor(w, h));
  out.stripSizes = [view.stripSizeFor(1264, false), view.stripSizeFor(350, true),
                    view.stripSizeFor(50, true)];
  out.defaults = [view.defaultView(360), view.defaultView(700), view.defaultView(1280)];
  const store = (value) => ({getItem: () => value, setItem: () => {}});
  out.saved = [view.savedView(store('speaker'), 1280), view.savedView(store('gallery'), 360),
               view.savedView(store('bogus'), 360), view.savedView(null, 1280)];

  // Gallery: nine a page, me first, then everybody in the order they joined.
  out.page1 = summary(tiles.tileViews(session, 'Me', choice()));
  out.page2 = summary(tiles.tileViews(session, 'Me', choice({page: 1})));
  out.pageTooFar = summary(tiles.tileViews(session, 'Me', choice({page: 7})));
  out.sixteen = summary(tiles.tileViews(session, 'Me', choice({pageSize: 16})));
  // Pinned: the first tile of every page.
  out.pinned1 = summary(tiles.tileViews(session, 'Me', choice({pinned: 'p-10'})));
  out.pinned2 = summary(tiles.tileViews(session, 'Me', choice({pinned: 'p-10', page: 1})));
  out.pinnedGone = summary(tiles.tileViews(session, 'Me', choice({pinned: 'p-99'})));

  // Speaker view: the dominant speaker on the stage; the strip holds me, then those received,
  // then recent speakers, then the others, drawn in their usual order.
  const speakers = {participant_id: 'p-05', recent: ['p-05', 'p-09', 'p-03']};
  out.speaker = summary(tiles.tileViews(session, 'Me', choice({view: 'speaker', speakers})));
  out.speakerWide = summary(tiles.tileViews(session, 'Me',
    choice({view: 'speaker', speakers, stripSize: 5})));
  out.speakerIsMe = summary(tiles.tileViews(session, 'Me', choice({view: 'speaker',
    speakers: {participant_id: 'p-me', recent: ['p-me', 'p-04']}})));
  out.speakerPinned = summary(tiles.tileViews(session, 'Me',
    choice({view: 'speaker', speakers, pinned: 'p-11'})));
  out.speakerNobody = summary(tiles.tileViews(session, 'Me', choice({view: 'speaker'})));
  const alone = {...session, participants: new Map()};
  out.speakerAlone = summary(tiles.tileViews(alone, 'Me', choice({view: 'speaker'})));

  // A shared screen takes the stage in either view (announced, before its slot comes).
  participants.get('p-02').media.screen = true;
  const shared = tiles.tileViews(session, 'Me', choice({speakers}));
  out.screen = summary(shared);
  out.screenRequest = receive.receiveRequest(shared, {stage: 601.4, tile: 200, strip: 120},
                                             null);
  participants.get('p-02').media.screen = false;

  // What the page asks for.
  const heights = {stage: 540, tile: 187.6, strip: 120};
  const gallery = tiles.tileViews(session, 'Me', choice());
  out.galleryRequest = receive.receiveRequest(gallery, heights, null);
  out.hiddenRequest = receive.receiveRequest(gallery, heights, null, true);
  const pinnedPage = tiles.tileViews(session, 'Me', choice({pinned: 'p-10', page: 1}));
  out.pinnedRequest = receive.receiveRequest(pinnedPage, heights, 'p-10');
  const speaker = tiles.tileViews(session, 'Me', choice({view: 'speaker', speakers}));
  out.speakerRequest = receive.receiveRequest(speaker, heights, null);
  out.aloneRequest = receive.receiveRequest(
    tiles.tileViews(alone, 'Me', choice({view: 'speaker'})), heights, null);
  out.heights = [receive.heightOf(0), receive.heightOf(360.6), receive.heightOf(5000)];
  return out;
}"""


def test_views_pages_pins_and_requests(browser: Any, contexts: list[Any], server: Server) -> None:
    page = open_person(browser, contexts, server)
    page.goto("/")
    expect(page.get_by_test_id("signin-page")).to_be_visible()
    out = page.evaluate(VIEWS)

    # 25 tiles a page on a large screen, 16 on a laptop, else 9 (never fewer).
    assert out["pageSizes"] == [25, 16, 9, 9, 9]
    assert out["stripSizes"] == [6, 2, 1]
    assert out["defaults"] == ["speaker", "speaker", "gallery"]
    assert out["saved"] == ["speaker", "gallery", "speaker", "gallery"]

    others = [f"p-{i:02d}" for i in range(1, 12)]
    assert out["page1"] == {
        "layout": "gallery",
        "stage": None,
        "grid": ["p-me", *others[:8]],
        "page": 0,
        "pages": 2,
        "notShown": 3,
    }
    assert out["page2"] == {
        "layout": "gallery",
        "stage": None,
        "grid": others[8:],
        "page": 1,
        "pages": 2,
        "notShown": 9,
    }
    assert out["pageTooFar"] == out["page2"]
    assert out["sixteen"]["grid"] == ["p-me", *others] and out["sixteen"]["pages"] == 1
    assert out["sixteen"]["notShown"] == 0
    # The pinned person is the first tile of each page; the others fill eight places a page.
    rest = ["p-me", *[p for p in others if p != "p-10"]]
    assert out["pinned1"]["grid"] == ["p-10", *rest[:8]]
    assert out["pinned2"]["grid"] == ["p-10", *rest[8:]]
    assert (out["pinned1"]["pages"], out["pinned1"]["notShown"]) == (2, 3)
    assert (out["pinned2"]["notShown"]) == 12 - 4
    assert out["pinnedGone"] == out["page1"]  # pinned someone who left: as if nobody

    # Speaker view, strip of 4: me, p-03 and p-07 (received; p-03 also spoke), then p-09
    # (spoke); drawn in their usual order. 12 - 1 - 4 people not shown.
    assert out["speaker"] == {
        "layout": "stage",
        "stage": "p-05:camera",
        "grid": ["p-me", "p-03", "p-07", "p-09"],
        "page": 0,
        "pages": 1,
        "notShown": 7,
    }
    assert out["speakerWide"]["grid"] == ["p-me", "p-01", "p-03", "p-07", "p-09"]
    # My own voice never takes the stage: the most recent other speaker does.
    assert out["speakerIsMe"]["stage"] == "p-04:camera"
    assert out["speakerPinned"]["stage"] == "p-11:camera"
    assert out["speakerNobody"]["stage"] == "p-01:camera"
    assert out["speakerAlone"]["stage"] == "self:camera" and out["speakerAlone"]["grid"] == []
    # A screen takes the stage even in the gallery view; the strip has its owner's camera.
    assert out["screen"]["layout"] == "stage" and out["screen"]["stage"] == "p-02:screen"
    assert out["screen"]["grid"] == ["p-me", "p-02", "p-03", "p-07"]
    assert out["screenRequest"] == {
        "last_n": 4,
        "visible": None,
        "pinned": [],
        "on_stage": ["p-02"],
        "max_height": {"p-02": 601},
        "default_max_height": 120,
    }

    # Gallery page: the people on it (me excluded), at a tile's height.
    assert out["galleryRequest"] == {
        "last_n": 8,
        "visible": others[:8],
        "pinned": [],
        "on_stage": [],
        "max_height": {},
        "default_max_height": 188,
    }
    assert out["hiddenRequest"] == {**out["galleryRequest"], "last_n": 0}
    assert out["pinnedRequest"]["visible"] == ["p-10", *rest[8:]]
    assert out["pinnedRequest"]["pinned"] == ["p-10"] and out["pinnedRequest"]["last_n"] == 4
    # Speaker view: the server picks; the stage person at the stage's height, 1 + 3 others.
    assert out["speakerRequest"] == {
        "last_n": 4,
        "visible": None,
        "pinned": [],
        "on_stage": ["p-05"],
        "max_height": {"p-05": 540},
        "default_max_height": 120,
    }
    assert out["aloneRequest"]["last_n"] == 0 and out["aloneRequest"]["on_stage"] == []
    assert out["heights"] == [1, 361, 2160]


# The parts with state: the view's controls, pins on tiles and in the people panel, a tile
# waiting for a new frame after its slot changed hands, the debounced requests and the hidden
# tab, the session's `receive` and `active-speaker`, and who speaks (the server, or the guess).
CONTROLS = """async () => {
  const tiles = await import('/static/js/room/tiles.js');
  const view = await import('/static/js/room/view.js');
  const receive = await import('/static/js/room/receive.js');
  const speaking = await import('/static/js/room/speaking.js');
  const people = await import('/static/js/room/people.js');
  const protocol = await import('/static/js/protocol.js');
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const until = async (check, ms = 10000) => {
    const end = performance.now() + ms;
    while (!check()) { if (performance.now() > end) return false; await sleep(20); }
    return true;
  };
  const out = {};
  const on = {microphone: true, camera: true, screen: false};
  const person = (pid, name) => ({participant_id: pid, user_id: 1, display_name: name,
                                  role: 'participant', media: {...on}});

  // The view's controls: the switch remembers the view; the pager pages and counts.
  const saved = {};
  const storage = {getItem: (k) => saved[k] ?? null, setItem: (k, v) => { saved[k] = v; }};
  let changes = 0;
  const v = view.createView({storage, windowWidth: () => 1280,
    box: () => ({width: 1000, height: 600}), changed: () => { changes++; }});
  const controls = () => ({
    view: v.state.view, switchView: v.viewSwitch.dataset.view,
    switchLabel: v.viewSwitch.getAttribute('aria-label'), switchText: v.viewSwitch.textContent,
    pager: v.pager.hidden, count: v.pager.querySelector('[data-testid="page-count"]').textContent,
    countHidden: v.pager.querySelector('[data-testid="page-count"]').hidden,
    notShown: v.pager.querySelector('[data-testid="not-shown"]').textContent,
    notShownHidden: v.pager.querySelector('[data-testid="not-shown"]').hidden,
    prev: v.pager.querySelector('[data-testid="page-previous"]').disabled,
    next: v.pager.querySelector('[data-testid="page-next"]').disabled,
    page: v.state.page});
  out.choice = v.choice(null);
  v.show({layout: 'gallery', stage: null, grid: [], page: 0, pages: 3, notShown: 5});
  out.first = controls();
  v.pager.querySelector('[data-testid="page-next"]').click();
  v.pager.querySelector('[data-testid="page-next"]').click();
  v.pager.querySelector('[data-testid="page-next"]').click();  // no page 4
  out.afterNext = [v.state.page, changes];
  v.show({layout: 'gallery', stage: null, grid: [], page: 2, pages: 3, notShown: 5});
  out.last = controls();
  v.pager.querySelector('[data-testid="page-previous"]').click();
  out.afterPrevious = v.state.page;
  v.show({layout: 'gallery', stage: null, grid: [], page: 0, pages: 1, notShown: 0});
  out.onePage = controls();
  v.viewSwitch.click();
  v.show({layout: 'stage', stage: null, grid: [], page: 0, pages: 1, notShown: 4});
  out.speaker = controls();
  out.saved = {...saved};
  v.togglePin('p-bo');
  out.pinned = v.state.pinned;
  v.keepPin((pid) => pid !== 'p-bo');  // Bo left
  out.pinAfterLeaving = v.state.pinned;

  // Tiles: a pin button on the others' cameras (not mine); pressed, it names the person.
  const canvas = document.createElement('canvas');
  canvas.width = 160; canvas.height = 120;
  const paint = canvas.getContext('2d');
  let drawing = 0;
  const draw = () => { paint.fillStyle = `hsl(${drawing++ * 10 % 360} 80% 50%)`;
                       paint.fillRect(0, 0, 160, 120); };
  const painter = setInterval(draw, 30);
  const track = canvas.captureStream(30).getVideoTracks()[0];
  const slots = {'p-bo': track};
  const participants = new Map([['p-bo', person('p-bo', 'Bo Berg')],
                                ['p-cy', person('p-cy', 'Cy Costa')]]);
  const session = {
    welcome: {participant_id: 'p-ana', you: person('p-ana', 'Ana Alves')},
    participantId: 'p-ana', media: on, participants, localTracks: {},
    tracksOf: (pid) => slots[pid] ? {camera: {slot: {mid: '1'}, track: slots[pid]}} : {},
  };
  const pins = [];
  const shown = tiles.createTiles({onPin: (pid) => pins.push(pid)});
  document.body.append(shown.stage, shown.grid);
  const tileOf = (pid) => shown.grid.querySelector(`[data-participant-id="${pid}"]`);
  const look = (pid) => { const t = tileOf(pid); const video = t.querySelector('video');
    return {waiting: t.classList.contains('waiting'), video: !video.hidden,
            avatar: !t.querySelector('.avatar').hidden, pinned: t.dataset.pinned,
            state: t.dataset.video}; };
  const render = (pinned) => shown.show(
    tiles.tileViews(session, 'Ana', {...tiles.EVERYTHING, pinned}), () => false);
  render(null);
  out.pinButtons = [...shown.grid.querySelectorAll('[data-testid="tile"]')].map((t) => {
    const b = t.querySelector('[data-testid="tile-pin"]');
    return b ? [t.dataset.participantId, b.getAttribute('aria-label'),
                b.getAttribute('aria-pressed')] : [t.dataset.participantId, null];
  });
  tileOf('p-cy').querySelector('[data-testid="tile-pin"]').click();
  out.pins = [...pins];
  render('p-cy');
  const cyPin = tileOf('p-cy').querySelector('[data-testid="tile-pin"]');
  out.pinnedTile = [shown.grid.firstElementChild.dataset.participantId,
                    cyPin.getAttribute('aria-label'), cyPin.getAttribute('aria-pressed'),
                    tileOf('p-cy').getAttribute('aria-label')];
  render(null);

  // Bo's slot: the avatar until a new frame is shown, then the video.
  out.boAttached = look('p-bo');
  out.boShows = await until(() => !look('p-bo').waiting);
  out.boAfter = look('p-bo');
  // The server gives the slot to Cy: Bo shows his initials at once, Cy waits for a frame.
  delete slots['p-bo']; slots['p-cy'] = track;
  render(null);
  out.remapped = {bo: look('p-bo'), cy: look('p-cy')};
  out.cyShows = await until(() => !look('p-cy').waiting);
  out.cyAfter = look('p-cy');
  clearInterval(painter);
  track.stop();
  shown.dispose(); shown.stage.remove(); shown.grid.remove();

  // The people panel: a pin button for each of the others.
  const list = people.createPeople({session, pinned: () => 'p-cy', onPin: (pid) => pins.push(pid)});
  list.render();
  out.peoplePins = [...list.panel.querySelectorAll('[data-testid="participant-item"]')].map(
    (li) => { const b = li.querySelector('[data-testid="participant-pin"]');
      return [li.dataset.participantId, li.dataset.pinned,
              b && b.getAttribute('aria-label'), b && b.getAttribute('aria-pressed')]; });
  list.panel.querySelector('[data-participant-id="p-bo"] [data-testid="participant-pin"]').click();
  out.pinsAfterPanel = [...pins];

  // Requests: changes that settle are sent once, the latest; a hidden tab at once.
  const sent = [];
  let hidden = false;
  const views = (n) => ({layout: 'gallery', stage: null,
    grid: Array.from({length: n}, (_, i) => ({participantId: `p-${i}`, self: false}))});
  const r = receive.createReceive({session: {setReceive: (m) => sent.push(m)},
    heights: () => ({stage: 500, tile: 200, strip: 100}), hidden: () => hidden,
    debounceMs: 150});
  r.update(views(2), null); r.update(views(3), null); r.update(views(4), 'p-1');
  out.beforeSettling = sent.length;
  await sleep(400);
  out.settled = sent.map((m) => [m.last_n, m.visible.length, m.pinned]);
  r.update(views(4), 'p-1');  // the same again: nothing to send
  await sleep(300);
  out.unchanged = sent.length;
  hidden = true; r.visibilityChanged();
  out.hidden = sent.length === 2 && sent[1].last_n;
  hidden = false; r.visibilityChanged();
  out.visibleAgain = sent.length === 3 && sent[2].last_n;
  r.dispose();

  // The session: `receive` kept, sent once per change, again after a new welcome; an older
  // server's `unknown-type` stops it; `active-speaker` kept in session.speakers.
  const s = new protocol.MeetingSession({url: 'ws://127.0.0.1:9/none', token: () => null});
  const wire = [];
  s.state = 'connected';
  s.ws = {readyState: WebSocket.OPEN, send: (m) => wire.push(JSON.parse(m))};
  const request = {last_n: 2, visible: ['p-bo'], pinned: []};
  out.sessionSent = [s.setReceive(request), s.setReceive({...request}),
                     s.setReceive({...request, last_n: 1})];
  out.wire = wire.map((m) => [m.type, typeof m.id, m.last_n]);
  const deliver = (event) => s._onMessage(s._generation, {data: JSON.stringify(event)});
  const heard = [];
  s.addEventListener('active-speaker', (e) => heard.push(e.detail.speakers));
  s.addEventListener('error', (e) => heard.push(['error', e.detail.event.code]));
  deliver({type: 'active-speaker', participant_id: 'p-bo', recent: ['p-bo', 'p-cy']});
  out.speakers = [s.speakers, heard.length];
  deliver({type: 'error', code: 'unknown-type', message: 'unknown type', ref: wire[1].id});
  out.refused = [s.receiveRefused, s.setReceive({...request, last_n: 5}), wire.length,
                 heard.length];

  // Who speaks: the server's dominant speaker once it said anything, else the guess.
  const guess = speaking.createSpeaking({pc: null, slots: [], media: on, localTracks: {},
    transceiverFor: () => null, participantId: 'p-ana', speakers: null});
  guess.heard('p-bo', 1000);
  const first = guess.speakers(1050).participant_id;
  guess.heard('p-cy', 1200);
  const hold = speaking.SPEAKING_HOLD_MS;
  out.guessed = [guess.speakers(1300), guess.speakers(1000 + hold + 1),
                 guess.isSpeaking('p-cy', 1300), guess.fromServer(), first];
  const fromServer = {pc: null, slots: [], media: on, localTracks: {}, transceiverFor: () => null,
    participantId: 'p-ana', speakers: {participant_id: 'p-ana', recent: ['p-ana', 'p-bo']}};
  const told = speaking.createSpeaking(fromServer);
  told.heard('p-bo', 1000);  // the guess no longer counts
  out.told = [told.isSpeaking('self', 1100), told.isSpeaking('p-bo', 1100), told.fromServer(),
              told.speakers(1100)];
  fromServer.speakers = {participant_id: 'p-bo', recent: ['p-bo', 'p-ana']};
  out.toldLater = [told.isSpeaking('self'), told.isSpeaking('p-bo')];
  return out;
}"""


def test_view_controls_pins_frames_and_requests(
    browser: Any, contexts: list[Any], server: Server
) -> None:
    page = open_person(browser, contexts, server)
    page.goto("/")
    expect(page.get_by_test_id("signin-page")).to_be_visible()
    out = page.evaluate(CONTROLS)

    # A 1000x600 box (less the pager's row): 9 a page; the strip holds 5.
    assert out["choice"] == {
        "view": "gallery",
        "page": 0,
        "pageSize": 9,
        "stripSize": 5,
        "pinned": None,
        "speakers": None,
    }
    first = out["first"]
    assert (first["view"], first["switchView"]) == ("gallery", "gallery")
    assert first["switchLabel"] == "Switch to the speaker view"
    assert first["switchText"] == "Speaker view"
    assert first["pager"] is False and first["countHidden"] is False
    assert (first["count"], first["notShown"], first["notShownHidden"]) == (
        "Page 1 of 3",
        "5 not shown",
        False,
    )
    assert (first["prev"], first["next"]) == (True, False)
    assert out["afterNext"] == [2, 2]  # the third "next" had nowhere to go
    assert out["last"]["count"] == "Page 3 of 3"
    assert (out["last"]["prev"], out["last"]["next"]) == (False, True)
    assert out["afterPrevious"] == 1
    assert out["onePage"]["pager"] is True  # one page, everybody shown: no pager
    speaker = out["speaker"]
    assert (speaker["view"], speaker["switchView"], speaker["switchText"]) == (
        "speaker",
        "speaker",
        "Gallery view",
    )
    # Under the stage: only the count of people not shown, no pages.
    assert speaker["pager"] is False and speaker["countHidden"] is True
    assert speaker["notShown"] == "4 not shown"
    assert out["saved"] == {"tertulia.view": "speaker"}
    assert out["pinned"] == "p-bo" and out["pinAfterLeaving"] is None

    # Pins: on the others' tiles only; the pinned one first, pressed, named "Unpin".
    assert out["pinButtons"] == [
        ["p-ana", None],
        ["p-bo", "Pin Bo Berg", "false"],
        ["p-cy", "Pin Cy Costa", "false"],
    ]
    assert out["pins"] == ["p-cy"]
    assert out["pinnedTile"] == ["p-cy", "Unpin Cy Costa", "true", "Cy Costa, pinned"]

    # A received camera newly on a tile: initials until a new frame is shown, then video.
    assert out["boAttached"] == {
        "waiting": True,
        "video": True,
        "avatar": True,
        "pinned": "false",
        "state": "waiting",
    }
    assert out["boShows"] is True
    assert out["boAfter"] == {
        "waiting": False,
        "video": True,
        "avatar": False,
        "pinned": "false",
        "state": "on",
    }
    # The slot goes to Cy: Bo's tile shows his initials at once, not Cy's (or his last) frame.
    assert out["remapped"]["bo"] == {
        "waiting": False,
        "video": False,
        "avatar": True,
        "pinned": "false",
        "state": "off",
    }
    assert out["remapped"]["cy"]["waiting"] is True and out["remapped"]["cy"]["avatar"] is True
    assert out["cyShows"] is True and out["cyAfter"]["avatar"] is False

    assert out["peoplePins"] == [
        ["p-ana", "false", None, None],
        ["p-bo", "false", "Pin Bo Berg", "false"],
        ["p-cy", "true", "Unpin Cy Costa", "true"],
    ]
    assert out["pinsAfterPanel"] == ["p-cy", "p-bo"]

    # Three changes within the wait: one request, the last; hidden: last_n 0 at once.
    assert out["beforeSettling"] == 0
    assert out["settled"] == [[4, 4, ["p-1"]]]
    assert out["unchanged"] == 1
    assert out["hidden"] == 0
    assert out["visibleAgain"] == 4

    # The session sends a changed request only, with an id; after `unknown-type` no more.
    assert out["sessionSent"] == [True, False, True]
    assert out["wire"] == [["receive", "string", 2], ["receive", "string", 1]]
    assert out["speakers"] == [{"participant_id": "p-bo", "recent": ["p-bo", "p-cy"]}, 1]
    assert out["refused"] == [True, False, 2, 1]  # nothing sent, no error shown

    # The guess: Bo spoke first and keeps the lead while he speaks; then Cy.
    assert out["guessed"][0] == {"participant_id": "p-bo", "recent": ["p-cy", "p-bo"]}
    assert out["guessed"][1]["participant_id"] == "p-cy"
    assert out["guessed"][2:] == [True, False, "p-bo"]
    # The server's word: its dominant speaker (me here) is highlighted, nobody else.
    assert out["told"] == [
        True,
        False,
        True,
        {"participant_id": "p-ana", "recent": ["p-ana", "p-bo"]},
    ]
    assert out["toldLater"] == [False, True]


# The waiting room and moderation modules with fake sessions: who may do what, the people
# panel's buttons and hands, the waiting list, the notices, the held controls, and the
# protocol client's handling of the moderation events.
MODERATION = """async () => {
  const protocol = await import('/static/js/protocol.js');
  const moderation = await import('/static/js/room/moderation.js');
  const people = await import('/static/js/room/people.js');
  const admission = await import('/static/js/room/admission.js');
  const notices = await import('/static/js/room/notices.js');
  const controls = await import('/static/js/room/controls.js');
  const tiles = await import('/static/js/room/tiles.js');
  const on = {microphone: true, camera: true, screen: false};
  const person = (pid, user_id, display_name, role, media, hand_raised_at = null) =>
    ({participant_id: pid, user_id, display_name, role, media, hand_raised_at});
  const sent = [];
  const fake = (role, settings = {}) => ({
    role,
    welcome: {participant_id: 'p-ana', you: person('p-ana', 1, 'Ana Alves', role, on),
              meeting: {settings: {require_approval: true, locked: false,
                                   allow_self_unmute: true, ...settings}}},
    media: {...on}, handRaisedAt: null, holds: new Set(),
    mayTurnOn(source) { return !this.holds.has(source); },
    participants: new Map([
      ['p-bo', person('p-bo', 2, 'Bo Berg', 'participant', {...on, screen: true},
                      '2026-12-01T10:02:00Z')],
      ['p-cy', person('p-cy', 3, 'Cy Costa', 'host', on)],
      ['p-di', person('p-di', 4, 'Di Dias', 'moderator', {...on, microphone: false},
                      '2026-12-01T10:01:00Z')],
    ]),
    knocks: new Map([
      ['p-w2', {participant_id: 'p-w2', user_id: 6, display_name: 'Fe Faro',
                since: '2026-12-01T10:05:00Z'}],
      ['p-w1', {participant_id: 'p-w1', user_id: 5, display_name: 'Ed Eira',
                since: '2026-12-01T10:04:00Z'}],
    ]),
    recording: {active: false},
    localTracks: {},
    command: (type, fields) => { sent.push([type, fields]); return true; },
    mute(pid, sources) { return this.command('mute', {pid, sources}); },
    admit(pid) { return this.command('admit', {pid}); },
    deny(pid) { return this.command('deny', {pid}); },
    admitAll() { return this.command('admit-all', {}); },
    hand(raised, pid) { return this.command('hand', {raised, pid}); },
    lock(locked) { return this.command('lock', {locked}); },
    sendMediaState(changes) { Object.assign(this.media, changes); sent.push(['media', changes]); },
  });
  const ids = (root, testid) => [...root.querySelectorAll(`[data-testid="${testid}"]`)];
  const out = {};

  out.powers = [['participant', false], ['moderator', false], ['host', false],
                ['participant', true]]
    .map(([role, admin]) => moderation.powersOf({role}, admin));

  // Hands: numbered oldest first for everybody; first in a moderator's list.
  const host = fake('host');
  out.rows = people.peopleRows(host).map((p) => [p.pid, p.handOrder]);
  out.handsFirst = people.peopleRows(host, {handsFirst: true}).map((p) => [p.pid, p.handOrder]);

  // The people panel: no buttons for a participant; the host's buttons on each row.
  const tools = moderation.createModeration({session: host, admin: () => false,
                                             problem: () => {}});
  tools.render();
  const list = people.createPeople({session: host, moderation: {
    powers: tools.powers, actions: tools.actions, tools: tools.tools}});
  list.render();
  const rowButtons = () => ids(list.panel, 'participant-item').map((li) =>
    [li.dataset.participantId, li.dataset.hand,
     [...li.querySelectorAll('[data-testid="moderation-actions"] button')]
       .map((b) => b.dataset.testid)]);
  out.hostRows = rowButtons();
  out.toolsShown = [tools.tools.hidden, ids(tools.tools, 'waiting-room-toggle')[0].hidden,
                    ids(tools.tools, 'lock-meeting')[0].textContent];
  list.panel.querySelector('[data-participant-id="p-bo"] [data-testid="mute-mic"]').click();
  list.panel.querySelector('[data-participant-id="p-bo"] [data-testid="lower-hand"]').click();
  ids(tools.tools, 'lock-meeting')[0].click();
  out.sent = sent.splice(0);

  const strict = fake('moderator', {allow_self_unmute: false});
  const modTools = moderation.createModeration({session: strict, admin: () => false,
                                                problem: () => {}});
  modTools.render();
  const modList = people.createPeople({session: strict, moderation: {
    powers: modTools.powers, actions: modTools.actions, tools: modTools.tools}});
  modList.render();
  out.moderatorRows = ids(modList.panel, 'participant-item').map((li) =>
    [li.dataset.participantId, [...li.querySelectorAll('.person-actions button')]
       .map((b) => b.dataset.testid)]);
  out.moderatorTools = [modTools.tools.hidden,
                        ids(modTools.tools, 'waiting-room-toggle')[0].hidden];

  const guest = fake('participant');
  const guestTools = moderation.createModeration({session: guest, admin: () => false,
                                                  problem: () => {}});
  guestTools.render();
  const guestList = people.createPeople({session: guest, moderation: {
    powers: guestTools.powers, actions: guestTools.actions, tools: guestTools.tools}});
  guestList.render();
  out.guest = [guestTools.tools.hidden, ids(guestList.panel, 'moderation-actions').length,
               ids(guestList.panel, 'participant-item').map((li) => li.dataset.participantId)];
  out.refusal = moderation.describeRefusal({code: 'not-waiting', message: 'x'});

  // The waiting list: oldest first, a badge, Admit / Deny / Admit all; hidden from others.
  const queue = admission.createAdmission({session: host, canAdmit: () => true});
  queue.render();
  out.queue = [ids(queue.panel, 'waiting-item').map((li) => li.dataset.participantId),
               ids(queue.button, 'waiting-count')[0].textContent, queue.button.hidden,
               ids(queue.panel, 'admit-all')[0].hidden];
  ids(queue.panel, 'admit')[0].click();
  ids(queue.panel, 'deny')[1].click();
  ids(queue.panel, 'admit-all')[0].click();
  queue.knocked({participant_id: 'p-w1', display_name: 'Ed Eira'});
  out.notice = [queue.notice.hidden, queue.notice.textContent];
  host.knocks.clear();
  queue.render();
  out.emptied = [queue.notice.hidden, ids(queue.button, 'waiting-count')[0].hidden,
                 ids(queue.panel, 'waiting-empty')[0].hidden];
  out.queueSent = sent.splice(0);
  const closedQueue = admission.createAdmission({session: guest, canAdmit: () => false});
  closedQueue.render();
  out.queueHidden = closedQueue.button.hidden;

  // Notices: muted by the moderator (until the microphone is on again), the countdown.
  let clock = Date.parse('2026-12-01T10:55:01Z');
  const lines = notices.createNotices({session: host, now: () => clock});
  host.media.microphone = false;
  lines.mutedBy({sources: ['microphone'], by: {display_name: 'Cy Costa'}, may_unmute: false});
  out.muted = [lines.muted.hidden, lines.muted.textContent];
  lines.render();
  out.mutedKept = lines.muted.hidden;
  host.media.microphone = true;
  lines.render();
  out.mutedGone = lines.muted.hidden;
  lines.meetingEnding({at: '2026-12-01T11:00:00Z', seconds: 300});
  out.ending = [lines.ending.hidden, lines.ending.textContent];
  lines.dispose();
  out.words = [notices.sourcesInWords(['microphone', 'camera', 'screen']),
               notices.mutedText(['camera'], null, true)];

  // Controls: a held microphone cannot be turned on; the hand button follows the session.
  const mine = fake('participant');
  mine.localTracks = {microphone: {enabled: true}};
  mine.holds.add('microphone');
  mine.handRaisedAt = '2026-12-01T10:00:00Z';
  const bar = controls.createControls({session: mine, announce: () => {}, problem: () => {},
                                       changed: () => bar.render(), microphoneOpened: () => {}});
  bar.render();
  const onBefore = [bar.mic.disabled, bar.mic.getAttribute('aria-label')];
  await bar.stoppedByModerator(['microphone']);  // the way the mute button goes
  out.controls = [onBefore, bar.mic.disabled, bar.mic.getAttribute('aria-label'),
                  bar.hand.getAttribute('aria-pressed'), bar.hand.getAttribute('aria-label'),
                  bar.end.hidden];
  out.stopped = [mine.localTracks.microphone.enabled, mine.media.microphone, sent.splice(0)];

  // Tiles: a raised hand on the camera tile.
  const views = tiles.tileViews({...host, participantId: 'p-ana', tracksOf: () => ({})}, 'Ana');
  const drawn = tiles.createTiles();
  drawn.show(views, () => false);
  out.tileHands = [...drawn.grid.children].map((el) =>
    [el.dataset.participantId, el.dataset.hand, el.getAttribute('aria-label')]);

  // The protocol client: the queue, holds, roles, hands, settings, refusals.
  const s = new protocol.MeetingSession({url: 'ws://127.0.0.1:9/none', token: () => null});
  const wire = [];
  s.state = 'connected';
  s.ws = {readyState: WebSocket.OPEN, send: (m) => wire.push(JSON.parse(m))};
  s.welcome = {participant_id: 'p-ana', you: person('p-ana', 1, 'Ana Alves', 'participant', on),
               meeting: {settings: {allow_self_unmute: false, locked: false}}};
  s.participants = new Map([['p-bo', person('p-bo', 2, 'Bo Berg', 'participant', on)]]);
  const events = [];
  for (const type of ['knocks', 'muted', 'unmute-allowed', 'role-changed', 'hand',
                      'meeting-updated', 'refused', 'removed', 'meeting-ending']) {
    s.addEventListener(type, (e) => events.push(type));
  }
  const deliver = (event) => s._onMessage(s._generation, {data: JSON.stringify(event)});
  deliver({type: 'knock', participant_id: 'p-w', user_id: 5, display_name: 'Ed',
           since: '2026-12-01T10:00:00Z'});
  const knocked = s.knocks.size;
  deliver({type: 'knock-resolved', participant_id: 'p-w', outcome: 'admitted', by: null});
  deliver({type: 'muted', sources: ['microphone', 'bogus'], by: {user_id: 3, display_name: 'Cy'},
           may_unmute: false});
  const held = [s.mayTurnOn('microphone'), s.mayTurnOn('camera')];
  deliver({type: 'unmute-allowed', by: {user_id: 3, display_name: 'Cy'}});
  deliver({type: 'role-changed', participant_id: 'p-ana', user_id: 1, role: 'moderator'});
  deliver({type: 'hand', participant_id: 'p-bo', raised: true, at: '2026-12-01T10:03:00Z'});
  deliver({type: 'hand', participant_id: 'p-ana', raised: true, at: '2026-12-01T10:04:00Z'});
  deliver({type: 'meeting-updated', host_id: 3, settings: {locked: true}});
  s.admit('p-x');
  s.remove('p-bo', true);
  deliver({type: 'error', code: 'not-waiting', message: 'gone', ref: wire[0].id});
  deliver({type: 'ack', ref: wire[1].id});
  deliver({type: 'meeting-ending', at: '2026-12-01T11:00:00Z', seconds: 300});
  deliver({type: 'removed', by: {user_id: 3, display_name: 'Cy'}, barred: true});
  out.session = {knocked, knocks: s.knocks.size, held, unheld: s.mayTurnOn('microphone'),
                 role: s.role, boHand: s.participants.get('p-bo').hand_raised_at,
                 myHand: s.handRaisedAt, locked: s.welcome.meeting.settings.locked,
                 kept: s.welcome.meeting.settings.allow_self_unmute,
                 wire: wire.map((m) => [m.type, m.participant_id, m.bar, typeof m.id]),
                 removed: s.removed && s.removed.barred, ending: s.ending && s.ending.seconds,
                 events,
                 final: [4412, 4413, 4423].map((c) => protocol.FINAL_CLOSE_CODES.has(c))};
  return out;
}"""


def test_moderation_modules_work_on_their_own(
    browser: Any, contexts: list[Any], server: Server
) -> None:
    page = open_person(browser, contexts, server)
    page.goto("/")
    expect(page.get_by_test_id("signin-page")).to_be_visible()
    out = page.evaluate(MODERATION)

    assert out["powers"] == [
        {"moderate": False, "host": False},
        {"moderate": True, "host": False},
        {"moderate": True, "host": True},
        {"moderate": True, "host": True},  # an admin
    ]
    # Di raised first (10:01), then Bo (10:02): numbered so for everybody, first for the host.
    assert out["rows"] == [["p-ana", 0], ["p-bo", 2], ["p-cy", 0], ["p-di", 1]]
    assert out["handsFirst"] == [["p-ana", 0], ["p-di", 1], ["p-bo", 2], ["p-cy", 0]]
    # The host's buttons: nothing on their own row or the host's (Cy is the meeting's host
    # here); what applies on the others (Bo shares his screen, Di is a muted moderator).
    assert out["hostRows"] == [
        ["p-ana", "down", []],
        ["p-di", "raised", ["lower-hand", "stop-camera", "remove-moderator", "make-host",
                            "remove-person"]],
        ["p-bo", "raised", ["lower-hand", "mute-mic", "stop-camera", "stop-screen",
                            "make-moderator", "make-host", "remove-person"]],
        ["p-cy", "down", []],
    ]  # fmt: skip
    assert out["toolsShown"] == [False, False, "Lock meeting"]
    assert out["sent"] == [
        ["mute", {"pid": "p-bo", "sources": ["microphone"]}],
        ["hand", {"raised": False, "pid": "p-bo"}],
        ["lock", {"locked": True}],
    ]
    # A moderator: no roles, no waiting room switch; "allow unmute" for the muted when people
    # may not unmute themselves.
    assert out["moderatorRows"] == [
        ["p-ana", []],
        ["p-di", ["lower-hand", "stop-camera", "allow-unmute", "remove-person"]],
        ["p-bo", ["lower-hand", "mute-mic", "stop-camera", "stop-screen", "remove-person"]],
        ["p-cy", []],
    ]
    assert out["moderatorTools"] == [False, True]
    # A participant: no tools, no buttons, the list in joining order.
    assert out["guest"] == [True, 0, ["p-ana", "p-bo", "p-cy", "p-di"]]
    assert "no longer waiting" in out["refusal"]

    assert out["queue"] == [["p-w1", "p-w2"], "2", False, False]
    assert out["notice"] == [False, "Ed Eira and 1 more are waiting to join.AdmitSee the list"]
    assert out["emptied"] == [True, True, False]
    assert out["queueSent"] == [
        ["admit", {"pid": "p-w1"}],
        ["deny", {"pid": "p-w2"}],
        ["admit-all", {}],
    ]
    assert out["queueHidden"] is True

    assert out["muted"][0] is False
    assert out["muted"][1].startswith("Muted by the moderator (Cy Costa): your microphone was")
    assert "when a moderator allows it" in out["muted"][1]
    assert out["mutedKept"] is False and out["mutedGone"] is True
    assert out["ending"] == [False, "This meeting ends in 4:59 (its scheduled end)."]
    assert out["words"][0] == "microphone, camera and screen share"
    assert out["words"][1].endswith("You can turn it on again.")

    # Held: on, it can be muted; once off, its button cannot turn it on.
    assert out["controls"] == [
        [False, "Mute microphone"],
        True,
        "Unmute microphone",
        "true",
        "Lower your hand",
        True,
    ]
    assert out["stopped"] == [False, False, [["media", {"microphone": False}]]]
    assert out["tileHands"] == [
        ["p-ana", "false", "Ana Alves (you)"],
        ["p-bo", "true", "Bo Berg, hand raised"],
        ["p-cy", "false", "Cy Costa"],
        ["p-di", "true", "Di Dias, hand raised, microphone off"],
    ]

    session = out["session"]
    assert session["knocked"] == 1 and session["knocks"] == 0
    assert session["held"] == [False, True] and session["unheld"] is True
    assert session["role"] == "moderator"
    assert session["boHand"] == "2026-12-01T10:03:00Z"
    assert session["myHand"] == "2026-12-01T10:04:00Z"
    assert session["locked"] is True and session["kept"] is False
    assert session["wire"] == [["admit", "p-x", None, "string"], ["remove", "p-bo", True, "string"]]
    assert session["removed"] is True and session["ending"] == 300
    assert session["events"] == [
        "knocks",
        "knocks",
        "muted",
        "unmute-allowed",
        "role-changed",
        "hand",
        "hand",
        "meeting-updated",
        "refused",
        "meeting-ending",
        "removed",
    ]
    assert session["final"] == [True, True, True]
