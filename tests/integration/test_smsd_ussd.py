"""aryz-smsd USSD: full sessions in Kyrgyz and Russian, every screen fits,
restart mid-session, abandoned sessions, language and home."""
import re

from smsd_helpers import start_smsd, ussd

GSM = set("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
          "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà^{}\\[~]|€")
SUZAK = "41703220856000"


class Walk:
    """One USSD session: each input extends the path, every screen is checked."""

    def __init__(self, d, session, phone):
        self.d, self.session, self.phone, self.path = d, session, phone, []
        self.screens = []

    def send(self, inp=None):
        if inp is not None:
            self.path.append(inp)
        st, body = ussd(self.d, self.session, self.phone, "*".join(self.path))
        assert st == 200, body
        kind, screen = body.rstrip("\n").split(" ", 1)
        assert kind in ("CON", "END")
        limit = 182 if set(screen) <= GSM else 80
        assert len(screen) <= limit, (len(screen), screen)
        self.screens.append(screen)
        return kind, screen

    def pick(self, name):
        """Choose the line naming `name`, paging with 9 as needed."""
        for _ in range(20):
            screen = self.screens[-1]
            for line in screen.split("\n"):
                m = re.match(r"^([1-8]) (.*)$", line)
                if m and m.group(2) == name:
                    return self.send(m.group(1))
            assert re.search(r"^9 ", screen, re.M), "no %r in %r" % (name, screen)
            self.send("9")
        raise AssertionError("not found: " + name)


def test_full_session_kyrgyz(db, daemons):
    d = start_smsd(daemons, db)
    w = Walk(d, "ATUid_ky1", "+996700300400")
    kind, s = w.send()
    assert kind == "CON" and "Жаңы арыз" in s
    kind, s2 = w.send("7")               # not a choice: the same screen again
    assert s2 == s
    kind, s = w.send("1")
    assert "Таштанды" in s
    kind, s = w.send("0")                # back
    assert "Жаңы арыз" in s
    kind, s = w.send("1")
    kind, s = w.send("1")                 # waste; no home: rayon list
    assert s.startswith("Район:")
    w.pick("Сузак")
    kind, s = w.pick("Сузак")            # the aiyl aimak
    assert "жазыңыз" in s
    kind, s = w.send("Таштанды 5 күндөн бери алынбай жатат")
    assert kind == "CON" and "1 Жөнөтүү" in s
    kind, s = w.send("1")
    assert kind == "END"
    ticket = re.search(r"№(\d+)", s).group(1)
    c = db.one("SELECT * FROM complaint WHERE ticket = %s", (ticket,))
    assert c["channel"] == "ussd" and c["category_code"] == "waste"
    assert c["municipality_soate"] == SUZAK and c["language"] == "ky"
    assert c["description"] == "Таштанды 5 күндөн бери алынбай жатат"
    # The aggregator retries the last callback: same ticket, nothing new.
    st, body = ussd(d, "ATUid_ky1", "+996700300400", "*".join(w.path))
    assert ticket in body
    assert db.scalar("SELECT count(*) FROM complaint") == 1
    assert db.scalar("SELECT idem_key FROM inbound_message") == "ussd:ATUid_ky1:%d" % len(w.path)


def test_language_home_and_russian_session(db, daemons):
    d = start_smsd(daemons, db)
    phone = "+996700300401"
    w = Walk(d, "s-lang", phone)
    w.send()
    kind, s = w.send("3")
    assert "Русский" in s
    kind, s = w.send("2")
    assert kind == "END" and "русский" in s
    assert db.scalar("SELECT language FROM resident WHERE phone = %s", (phone,)) == "ru"
    # Set the home municipality.
    w = Walk(d, "s-home", phone)
    kind, s = w.send()
    assert "Новая жалоба" in s
    w.send("4")
    w.pick("Сузакский")
    kind, s = w.pick("Сузакский")
    assert kind == "END"
    assert db.scalar("SELECT home_soate FROM resident WHERE phone = %s", (phone,)) == SUZAK
    # A complaint now offers the home first.
    w = Walk(d, "s-ru", phone)
    w.send()
    kind, s = w.send("1")
    assert "Освещение" in s
    kind, s = w.send("2")
    assert "Сузакский" in s and "Другой айыл" in s
    w.send("1")
    kind, s = w.send("Фонари не горят на улице Ленина")
    assert "Освещение" in s and "Отправить" in s
    kind, s = w.send("1")
    assert kind == "END" and "Заявка №" in s
    ticket = re.search(r"№(\d+)", s).group(1)
    c = db.one("SELECT * FROM complaint WHERE ticket = %s", (ticket,))
    assert c["language"] == "ru" and c["category_code"] == "lighting"
    assert c["municipality_soate"] == SUZAK
    # Status of the ticket.
    w = Walk(d, "s-status", phone)
    w.send()
    kind, s = w.send("2")
    kind, s = w.send(ticket)
    assert kind == "END" and ticket in s and "принята" in s


def test_every_list_page_fits(db, daemons):
    """Walk every rayon and every aiyl aimak page in both languages."""
    d = start_smsd(daemons, db)
    for lang_pick in ("1", "2"):
        phone = "+99670030050" + lang_pick
        w = Walk(d, "lang-" + lang_pick, phone)
        w.send()
        w.send("3")
        w.send(lang_pick)
        n = 0
        while True:
            w = Walk(d, "pages-%s-%d" % (lang_pick, n), phone)
            w.send()
            w.send("4")
            # go to rayon page containing the n-th rayon entry
            idx = n
            while True:
                items = [l for l in w.screens[-1].split("\n") if re.match(r"^[1-8] ", l)]
                if idx < len(items):
                    break
                idx -= len(items)
                assert re.search(r"^9 ", w.screens[-1], re.M), "ran out of rayons"
                w.send("9")
            kind, s = w.send(str(idx + 1))
            while re.search(r"^9 ", s, re.M):   # every AA page
                kind, s = w.send("9")
            n += 1
            if n >= db.scalar("SELECT count(DISTINCT rayon_soate) FROM municipality"):
                break


def test_restart_mid_session_and_abandoned(db, daemons):
    d = start_smsd(daemons, db)
    w = Walk(d, "restart-1", "+996700300402")
    w.send()
    w.send("1")
    w.send("5")                                  # water
    w.pick("Ак-Суу")
    w.pick("Ак-Булуң")
    d.kill9()
    d.start(wait_log="USSD menu loaded")
    kind, s = w.send("Суу жок")
    assert "Суу" in s and "Ак-Булуң" in s
    kind, s = w.send("1")
    assert kind == "END"
    assert db.scalar("SELECT municipality_soate FROM complaint") == "41702205805000"
    # Abandoned: walks to the confirm screen, never confirms.
    w = Walk(d, "abandon-1", "+996700300403")
    w.send()
    w.send("1")
    w.send("1")
    w.pick("Сузак")
    w.pick("Сузак")
    w.send("Таштанды")
    assert db.scalar("SELECT count(*) FROM complaint") == 1
    # Cancel ends the session without a complaint either.
    kind, s = w.send("2")
    assert kind == "END"
    assert db.scalar("SELECT count(*) FROM complaint") == 1
    assert db.scalar("SELECT steps FROM ussd_session WHERE session_id = 'abandon-1'") == len(w.screens)


def _complain(d, session, phone, name="Сузак"):
    w = Walk(d, session, phone)
    w.send()
    w.send("1")
    w.send("1")
    w.pick(name)
    w.pick(name)
    w.send("Таштанды алынбайт")
    kind, s = w.send("1")
    assert kind == "END"
    _complain.path = "*".join(w.path)
    return re.search(r"№(\d+)", s).group(1)


def test_reused_session_id_is_a_new_session(db, daemons):
    """An aggregator that reuses a session id (after its restart, or after
    the session row expired) starts a new session: the new caller's own
    snapshot, and a complaint of their own, not the earlier caller's
    ticket."""
    d = start_smsd(daemons, db)
    db.execute("INSERT INTO resident (phone, language) VALUES ('+996700300411', 'ru')")
    t1 = _complain(d, "77", "+996700300410")
    # Another phone under the same id: Kyrgyz was the first one's, Russian is theirs.
    kind, s = ussd(d, "77", "+996700300411", "")
    assert "Новая жалоба" in s, s
    t2 = _complain(d, "77", "+996700300411", "Сузакский")
    # The same phone dialling again under the same id after the END.
    t3 = _complain(d, "77", "+996700300411", "Сузакский")
    # After expiry the row is gone; the id comes back once more.
    db.execute("DELETE FROM ussd_session")
    t4 = _complain(d, "77", "+996700300410")
    assert len({t1, t2, t3, t4}) == 4
    assert db.scalar("SELECT count(*) FROM complaint") == 4
    assert db.scalar("SELECT reporter FROM complaint WHERE ticket = %s", (t2,)) == "+996700300411"
    # A retry of the last callback still answers the same ticket.
    st, body = ussd(d, "77", "+996700300410", _complain.path)
    assert st == 200 and t4 in body
    assert db.scalar("SELECT count(*) FROM complaint") == 4


def test_screens_are_not_logged(db, daemons):
    """A USSD screen echoes what the resident typed (the confirm screen
    quotes the description, the status screen a ticket): the info log has
    the kind and the size of each answer, not its text."""
    d = start_smsd(daemons, db)
    w = Walk(d, "nolog-1", "+996700300420")
    w.send()
    w.send("1")
    w.send("1")
    w.pick("Сузак")
    w.pick("Сузак")
    kind, s = w.send("Чалыңыз 0555123456 Асан")
    assert "0555123456" in s and kind == "CON"
    kind, s = w.send("1")
    assert kind == "END"
    assert d.log_contains(r"POST /ussd -> 200 CON \(\d+ characters\)")
    assert d.log_contains(r"POST /ussd -> 200 END \(\d+ characters\)")
    assert not d.log_contains("0555123456")
    assert not d.log_contains("Асан")


def test_category_screen_shows_every_category_whole(db, daemons):
    """The category list used to be cut at the screen limit mid-word
    ("6 Ба"); now every label is whole, with paging if they do not fit."""
    d = start_smsd(daemons, db)
    db.execute("INSERT INTO resident (phone, language) VALUES ('+996700300431', 'ru')")
    for phone, want in (("+996700300430", ["Таштанды", "Суу", "Башка"]),
                        ("+996700300431", ["Мусор", "Вода", "Другое"])):
        w = Walk(d, "cats-" + phone, phone)
        w.send()
        kind, s = w.send("1")
        labels = [l.split(" ", 1)[1] for l in s.split("\n") if re.match(r"^[1-8] ", l)]
        assert len(labels) == db.scalar("SELECT count(*) FROM service_category"), s
        for x in want:
            assert x in labels, s
        assert re.search(r"^0 ", s, re.M), s
    # More categories than fit: a second page behind 9, and 0 comes back.
    db.execute("INSERT INTO service_category (code, name_ky, name_ru, name_en, sort) VALUES "
               "('roads', 'Жолдор жана көпүрөлөр', 'Дороги и мосты', 'Roads', 6)")
    size = d.log_size()
    d.sighup()
    d.wait_log("USSD menu loaded", since=size)
    w = Walk(d, "cats-more", "+996700300432")
    w.send()
    kind, s = w.send("1")
    assert re.search(r"^9 ", s, re.M), s
    kind, s2 = w.send("9")
    assert "Башка" in s2 and s2 != s
    kind, s3 = w.send("0")
    assert s3 == s
