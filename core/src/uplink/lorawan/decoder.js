// carebridge compact LoRaWAN payload codec, format version 1.
//
// Payload formatter for ChirpStack v4 (device profile → codec → JavaScript)
// and The Things Stack (uplink/downlink payload formatter → Custom
// Javascript). It mirrors src/uplink/lorawan/codec.rs; tests/lorawan_js.rs
// runs it under node against payloads produced by the Rust encoder.
//
//   decodeUplink({bytes, fPort})   -> {data, warnings, errors}
//   encodeDownlink({data})         -> {bytes, fPort, warnings, errors}
//   decodeDownlink({bytes, fPort}) -> {data, warnings, errors}
//
// Plain ES5 so every network server's engine runs it.

var VERSION = 1;
var COMMAND_PORT = 20;
var KIND_NONE = 31;
// model::Kind codes, in code order (append only).
var KINDS = ["motion", "occupancy", "contact", "temperature", "humidity", "illuminance", "panic", "fall", "smoke", "co", "water_leak", "bed", "chair", "power", "energy", "battery", "battery_low", "voltage", "tamper", "vibration", "switch", "pressure", "button"];
var SEVERITIES = ["info", "warning", "urgent"];

function scale(kind) {
  if (kind === "temperature" || kind === "humidity" || kind === "energy") return 10;
  if (kind === "voltage") return 100;
  return 1;
}

function decodeAge(b) {
  return b < 60 ? b : 60 + (b - 60) * 15;
}

function Reader(bytes) {
  this.b = bytes;
  this.at = 0;
}
Reader.prototype.need = function (n) {
  if (this.b.length - this.at < n) {
    throw new Error("payload incomplete: " + (n - (this.b.length - this.at)) + " more byte(s) needed");
  }
};
Reader.prototype.u8 = function () {
  this.need(1);
  return this.b[this.at++] & 0xff;
};
Reader.prototype.u16 = function () {
  var hi = this.u8();
  return (hi << 8) | this.u8();
};
Reader.prototype.i16 = function () {
  var v = this.u16();
  return v >= 0x8000 ? v - 0x10000 : v;
};
Reader.prototype.kind = function (code, allowNone) {
  if (allowNone && code === KIND_NONE) return null;
  if (code >= KINDS.length) throw new Error("byte " + (this.at - 1) + ": unknown kind code " + code);
  return KINDS[code];
};

function header(r) {
  var h = r.u8();
  if (h >> 5 !== VERSION) throw new Error("byte 0: format version " + (h >> 5) + " not supported");
  return h & 0x1f;
}

function halfC(b) {
  if (b === 0x80) return null;
  return (b >= 0x80 ? b - 0x100 : b) / 2;
}

function decodeMessage(bytes) {
  var r = new Reader(bytes);
  var t = header(r);
  if (t >= 1 && t <= 4) {
    var ksv = r.u8();
    var kind = r.kind(ksv >> 3, true);
    var sev = (ksv >> 1) & 3;
    if (sev > 2) throw new Error("byte 1: unknown severity code " + sev);
    var age = decodeAge(r.u8());
    var idx = t % 2 === 0 ? r.u16() : r.u8();
    var value = t >= 3 ? r.i16() / scale(kind) : null;
    return {
      type: "alert", kind: kind, severity: SEVERITIES[sev],
      state: (ksv & 1) ? "cleared" : "raised",
      device_index: idx, age_min: age, value: value
    };
  }
  if (t === 5) {
    var n = r.u8();
    r.need(n * 5);
    var readings = [];
    for (var i = 0; i < n; i++) {
      var d = r.u8();
      var k = r.kind(r.u8(), false);
      var a = decodeAge(r.u8());
      readings.push({ device_index: d, kind: k, age_min: a, value: r.i16() / scale(k) });
    }
    return { type: "telemetry", readings: readings };
  }
  if (t === 6) {
    var s = { type: "summary", period_h: r.u8(), temp_min_c: halfC(r.u8()), temp_max_c: halfC(r.u8()),
      battery_low: r.u8(), backlog: r.u16(), rooms: [] };
    var m = r.u8();
    if (m > 21) throw new Error("field rooms: " + m + " rooms exceed the 21 that fit 51 bytes");
    r.need(m * 2);
    for (var j = 0; j < m; j++) s.rooms.push({ room_index: r.u8(), active_slots: r.u8() });
    return s;
  }
  throw new Error("byte 0: unknown message type " + t);
}

function decodeUplink(input) {
  try {
    var data = decodeMessage(input.bytes || []);
    return { data: data, warnings: [], errors: [] };
  } catch (e) {
    return { data: {}, warnings: [], errors: [String(e.message || e)] };
  }
}

function hdr(t) {
  return (VERSION << 5) | t;
}

function u16(v) {
  return [(v >> 8) & 0xff, v & 0xff];
}

function kindCode(kind) {
  if (kind === null || kind === undefined) return KIND_NONE;
  var c = KINDS.indexOf(kind);
  if (c < 0) throw new Error("field kind: unknown kind " + kind);
  return c;
}

function intIn(v, lo, hi, field) {
  if (typeof v !== "number" || v % 1 !== 0 || v < lo || v > hi) {
    throw new Error("field " + field + ": must be a whole number " + lo + ".." + hi);
  }
  return v;
}

function encodeCommand(d) {
  switch (d.command) {
    case "ack":
      return [hdr(16)].concat(u16(intIn(d.device_index, 0, 65535, "device_index")), [kindCode(d.kind)]);
    case "ack_seq":
      var s = intIn(d.seq, 0, 4294967295, "seq");
      return [hdr(17), Math.floor(s / 16777216) & 0xff, (s >> 16) & 0xff, (s >> 8) & 0xff, s & 0xff];
    case "ping":
      return [hdr(18), intIn(d.token, 0, 255, "token")];
    case "permit_join":
      return [hdr(19)].concat(u16(intIn(d.secs, 0, 65535, "secs")));
    default:
      throw new Error("field command: unknown command " + d.command + " (ack, ack_seq, ping, permit_join)");
  }
}

function encodeDownlink(input) {
  try {
    return { bytes: encodeCommand(input.data || {}), fPort: COMMAND_PORT, warnings: [], errors: [] };
  } catch (e) {
    return { bytes: [], warnings: [], errors: [String(e.message || e)] };
  }
}

function decodeDownlink(input) {
  try {
    var r = new Reader(input.bytes || []);
    var t = header(r);
    var data;
    if (t === 16) {
      var idx = r.u16();
      data = { command: "ack", device_index: idx, kind: r.kind(r.u8(), true) };
    } else if (t === 17) {
      var hi = r.u16();
      data = { command: "ack_seq", seq: hi * 65536 + r.u16() };
    } else if (t === 18) {
      data = { command: "ping", token: r.u8() };
    } else if (t === 19) {
      data = { command: "permit_join", secs: r.u16() };
    } else {
      throw new Error("byte 0: unknown message type " + t);
    }
    return { data: data, warnings: [], errors: [] };
  } catch (e) {
    return { data: {}, warnings: [], errors: [String(e.message || e)] };
  }
}

if (typeof module !== "undefined") {
  module.exports = { decodeUplink: decodeUplink, encodeDownlink: encodeDownlink, decodeDownlink: decodeDownlink, KINDS: KINDS };
}
