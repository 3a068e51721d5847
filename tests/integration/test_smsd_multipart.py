"""aryz-smsd multipart SMS: 8-bit and 16-bit UDH references, out of order,
duplicates, and incomplete groups surfaced after multipart.max_age."""
import urllib.parse

from harness import http, wait_for
from smsd_helpers import base, kannel_post, sms_json, start_smsd

PHONE = "+996700222333"


def udh8(ref, total, seq):
    return bytes([5, 0, 3, ref, total, seq])


def udh16(ref, total, seq):
    return bytes([6, 8, 4, ref >> 8, ref & 255, total, seq])


def get_part(d, mid, udh, text):
    q = urllib.parse.urlencode({"from": PHONE, "to": "1212", "id": mid, "text": text,
                                "udh": udh})
    return http("GET", base(d) + "/sms/kannel?" + q)


def test_udh8_out_of_order_and_duplicate(db, daemons):
    d = start_smsd(daemons, db)
    parts = ["Сузак айылында таштанды ", "бир жумадан бери ", "алынбай жатат"]
    for seq in (3, 1):
        st, _, body = get_part(d, "m8-%d" % seq, udh8(42, 3, seq), parts[seq - 1])
        assert st == 200 and b"OK part" in body, body
    st, _, _ = get_part(d, "m8-1", udh8(42, 3, 1), parts[0])      # redelivered
    assert st == 200
    assert db.scalar("SELECT count(*) FROM complaint") == 0
    st, _, body = get_part(d, "m8-2", udh8(42, 3, 2), parts[1])
    assert st == 200 and b"ticket=" in body, body
    c = db.one("SELECT c.description, c.category_code, m.idem_key, m.meta FROM complaint c "
               "JOIN inbound_message m ON m.id = c.inbound_id")
    assert c["description"] == "".join(parts)
    assert c["category_code"] == "waste"
    assert c["idem_key"].startswith("concat:")
    assert c["meta"]["concat"]["partial"] is False
    assert db.scalar("SELECT count(*) FROM inbound_message WHERE outcome = 'part'") == 3
    # The same reference later is a new message.
    for seq in (1, 2):
        st, _, body = get_part(d, "m8b-%d" % seq, udh8(42, 2, seq), "Суу жок " * seq)
        assert st == 200
    assert db.scalar("SELECT count(*) FROM complaint") == 2


def test_udh16_via_post_hex_header_and_json(db, daemons):
    d = start_smsd(daemons, db)
    h = udh16(0x1234, 2, 2).hex().upper()
    st, _, body = kannel_post(d, "ул. Ленина".encode("utf-16-be"),
                              {"X-Kannel-From": PHONE, "X-Kannel-UDH": h, "X-Kannel-Coding": "2",
                               "X-Kannel-Id": "m16-2"})
    assert st == 200 and b"part 2/2" in body, body
    h = udh16(0x1234, 2, 1).hex()
    st, _, body = kannel_post(d, "Фонари не горят, ".encode("utf-16-be"),
                              {"X-Kannel-From": PHONE, "X-Kannel-UDH": h, "X-Kannel-Coding": "2",
                               "X-Kannel-Id": "m16-1"})
    assert st == 200 and b"ticket=" in body, body
    assert db.scalar("SELECT description FROM complaint") == "Фонари не горят, ул. Ленина"
    # JSON parts with explicit concat fields.
    for seq, t in ((2, "третий день"), (1, "Нет воды ")):
        st, _, body = sms_json(d, {"message_id": "j-%d" % seq, "from": PHONE, "text": t,
                                   "concat": {"ref": 7, "total": 2, "seq": seq}})
        assert st == 200, body
    assert db.scalar("SELECT count(*) FROM complaint WHERE description = 'Нет воды третий день'") == 1


def test_incomplete_group_is_surfaced(db, daemons):
    d = start_smsd(daemons, db)     # multipart.max_age = 3 s in the test config
    st, _, _ = get_part(d, "lost-1", udh8(9, 3, 1), "Musor ")
    st, _, _ = get_part(d, "lost-3", udh8(9, 3, 3), " alynbady")
    assert st == 200
    wait_for(lambda: db.scalar("SELECT count(*) FROM complaint") == 1, timeout=20,
             what="partial group surfaced")
    c = db.one("SELECT c.description, m.meta FROM complaint c JOIN inbound_message m "
               "ON m.id = c.inbound_id")
    assert c["description"] == "Musor [...] alynbady"
    assert c["meta"]["concat"]["partial"] is True
    assert db.scalar("SELECT partial FROM sms_concat") is True
    assert d.log_contains("incomplete, surfaced")


def test_late_part_joins_the_surfaced_complaint(db, daemons):
    """A part that arrives after its group was surfaced incomplete fills
    the gap in that complaint instead of opening a group that would be
    surfaced as a second complaint."""
    import time
    d = start_smsd(daemons, db)     # multipart.max_age = 3 s
    get_part(d, "late-1", udh8(11, 3, 1), "Musor ")
    get_part(d, "late-3", udh8(11, 3, 3), " alynbady")
    wait_for(lambda: db.scalar("SELECT count(*) FROM complaint") == 1, timeout=20,
             what="partial group surfaced")
    st, _, body = get_part(d, "late-2", udh8(11, 3, 2), "3 kundon beri")
    assert st == 200 and b"part 2/3" in body, body
    assert db.scalar("SELECT description FROM complaint") == "Musor 3 kundon beri alynbady"
    assert db.scalar("SELECT count(*) FROM complaint_event WHERE kind = 'late_part'") == 1
    # A redelivery is a duplicate, and no sweep makes a second complaint.
    st, _, body = get_part(d, "late-2", udh8(11, 3, 2), "3 kundon beri")
    assert st == 200 and b"duplicate" in body, body
    time.sleep(5)   # max_age 3 s + sweep interval 1 s: a new group would be surfaced by now
    assert db.scalar("SELECT count(*) FROM complaint") == 1
    assert db.scalar("SELECT count(*) FROM sms_concat WHERE closed_at IS NULL") == 0
