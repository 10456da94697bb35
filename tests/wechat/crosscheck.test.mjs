// Cross-checks siyu's WeChat callback crypto (src/domain/wechat) against two independent
// implementations from npm: @wecom/crypto (Tencent's) and wechat-crypto (node-webot). Both
// directions: the peers encrypt and siyu verifies and decrypts; siyu encrypts and the peers
// decrypt; signatures agree; with the same random prefix the ciphertexts are byte-identical.
//
// siyu is reached through its wechat_crypto_cli (JSON lines on stdin/stdout). Build it first:
//   ninja -C build wechat_crypto_cli && node --test tests/wechat/
// SIYU_WECHAT_CLI overrides its path. A missing CLI fails the run: it never skips.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createCipheriv, randomBytes, randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const wecom = require('@wecom/crypto');
const WXBizMsgCrypt = require('wechat-crypto');

const CLI =
  process.env.SIYU_WECHAT_CLI ||
  fileURLToPath(new URL('../../build/src/domain/wechat/wechat_crypto_cli', import.meta.url));

// Sends requests to one CLI process and returns its answers, in order.
function siyu(requests) {
  if (!existsSync(CLI)) {
    throw new Error(
      `siyu's wechat_crypto_cli was not found at ${CLI}. Build it with ` +
        '`cmake -S . -B build -G Ninja && ninja -C build wechat_crypto_cli`, or point ' +
        'SIYU_WECHAT_CLI at it. The cross-check cannot run without it.',
    );
  }
  const input = requests.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const run = spawnSync(CLI, [], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  assert.equal(run.error, undefined, `cannot run ${CLI}: ${run.error}`);
  assert.equal(run.status, 0, `wechat_crypto_cli exited ${run.status}: ${run.stderr}`);
  const answers = run.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l));
  assert.equal(answers.length, requests.length, 'one answer per request');
  return answers;
}

const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const randomKey = () => Array.from({ length: 43 }, () => BASE64[randomInt(64)]).join('');
const randomToken = () =>
  Array.from({ length: 3 + randomInt(30) }, () => BASE64[randomInt(62)]).join('');

// Published keys (one non-canonical in its last character, one all-zero) plus random ones,
// which are non-canonical three times in four.
const SUITES = [
  { token: 'QDG6eK', key: 'jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C', id: 'wx5823bf96d3bd56c7' },
  { token: '123456', key: 'kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR', id: 'wx49f0ab532d5d035a' },
  { token: 'zeroKey', key: 'A'.repeat(43), id: 'ww' + randomBytes(8).toString('hex') },
  { token: randomToken(), key: randomKey(), id: 'tj' + randomBytes(7).toString('hex') },
  { token: randomToken(), key: randomKey(), id: 'wx' + randomBytes(8).toString('hex') },
];

// Lengths around the 32-byte padding boundary (the frame adds 20 bytes plus the id), multi-byte
// UTF-8, newlines that must survive untrimmed, and random mixed text.
const CHARS = ['a', 'Z', '0', ' ', '\n', '\r\n', '\t', '"', '\\', '<', ']]>', '\u0000', '你', '私域',
  '🙂', 'é', '\u2028'];
function randomText(maxUnits) {
  let s = '';
  const n = randomInt(maxUnits + 1);
  for (let i = 0; i < n; i++) s += CHARS[randomInt(CHARS.length)];
  return s;
}
const MESSAGES = [
  '',
  'a',
  'x'.repeat(31),
  'x'.repeat(32),
  'x'.repeat(33),
  'x'.repeat(25),
  'x'.repeat(26),
  'x'.repeat(58),
  '1616140317555161061',
  '\n',
  '\n\nleading and trailing newlines\n\n',
  '  spaces  ',
  'line1\nline2\r\nline3',
  '你好，私域🙂',
  '<xml><Content><![CDATA[多字节\n换行]]></Content></xml>',
  'x'.repeat(4000),
  ...Array.from({ length: 12 }, () => randomText(80)),
];

const TS = '1700000000';
const NONCE = '1234567890';

test('the siyu CLI is built', () => {
  assert.ok(
    existsSync(CLI),
    `wechat_crypto_cli not found at ${CLI}: build it with ninja -C build wechat_crypto_cli`,
  );
});

test('peers encrypt, siyu verifies the signature and decrypts', () => {
  const requests = [];
  const expected = [];
  for (const s of SUITES) {
    const legacy = new WXBizMsgCrypt(s.token, s.key, s.id);
    for (const msg of MESSAGES) {
      const a = wecom.encrypt(s.key, msg, s.id);
      const b = legacy.encrypt(msg);
      for (const encrypt of [a, b]) {
        const base = { token: s.token, key: s.key, receive_id: s.id };
        requests.push({
          ...base,
          op: 'decrypt',
          encrypt,
          timestamp: TS,
          nonce: NONCE,
          msg_signature: wecom.getSignature(s.token, TS, NONCE, encrypt),
        });
        expected.push(msg);
        // The same through the POST envelope, signed by the other peer.
        requests.push({
          ...base,
          op: 'decrypt_message',
          msg_signature: legacy.getSignature(TS, NONCE, encrypt),
          timestamp: TS,
          nonce: NONCE,
          body:
            `<xml><ToUserName><![CDATA[${s.id}]]></ToUserName>` +
            `<Encrypt><![CDATA[${encrypt}]]></Encrypt><AgentID><![CDATA[218]]></AgentID></xml>`,
        });
        expected.push(msg);
      }
    }
  }
  const answers = siyu(requests);
  answers.forEach((ans, i) => {
    assert.equal(ans.ok, true, `request ${i}: ${JSON.stringify(ans)}`);
    assert.equal(ans.message, expected[i], `request ${i}`);
  });
});

test('siyu encrypts, both peers decrypt and agree on the signature', () => {
  const requests = [];
  for (const s of SUITES) {
    for (const msg of MESSAGES) {
      requests.push({ op: 'encrypt', token: s.token, key: s.key, receive_id: s.id, message: msg,
        timestamp: TS, nonce: NONCE });
    }
  }
  const answers = siyu(requests);
  answers.forEach((ans, i) => {
    const req = requests[i];
    assert.equal(ans.ok, true, JSON.stringify(ans));
    assert.equal(Buffer.from(ans.encrypt, 'base64').length % 32, 0, '32-byte padding');
    const a = wecom.decrypt(req.key, ans.encrypt);
    assert.equal(a.message, req.message);
    assert.equal(a.id, req.receive_id);
    const b = new WXBizMsgCrypt(req.token, req.key, req.receive_id).decrypt(ans.encrypt);
    assert.equal(b.message, req.message);
    assert.equal(b.id, req.receive_id);
    assert.equal(ans.msg_signature, wecom.getSignature(req.token, TS, NONCE, ans.encrypt));
  });
});

test('with the same random prefix, siyu and @wecom/crypto produce identical ciphertext', () => {
  const requests = [];
  const expected = [];
  for (const s of SUITES) {
    for (const msg of MESSAGES) {
      const random = randomBytes(16);
      requests.push({ op: 'encrypt', token: s.token, key: s.key, receive_id: s.id, message: msg,
        random_hex: random.toString('hex') });
      expected.push(wecom.encrypt(s.key, msg, s.id, random));
    }
  }
  siyu(requests).forEach((ans, i) => {
    assert.equal(ans.ok, true, JSON.stringify(ans));
    assert.equal(ans.encrypt, expected[i]);
  });
  // And siyu recovers the random prefix the peer used.
  const random = randomBytes(16);
  const enc = wecom.encrypt(SUITES[0].key, 'r', SUITES[0].id, random);
  const [opened] = siyu([{ op: 'open', token: 't', key: SUITES[0].key, receive_id: 'x',
    encrypt: enc }]);
  assert.equal(opened.random_hex, random.toString('hex'));
  assert.equal(opened.receive_id, SUITES[0].id);
});

test('signatures agree on random inputs', () => {
  const requests = [];
  const tricky = ['', 'a', 'A', 'Z', 'z', '0', '9', '+', '/', '=', 'aa', 'a0', 'A0', '+/='];
  for (let i = 0; i < 300; i++) {
    const pick = () => (randomInt(4) === 0 ? tricky[randomInt(tricky.length)] : randomToken());
    requests.push({ op: 'signature', token: randomToken(), key: SUITES[0].key, receive_id: 'x',
      timestamp: String(randomInt(2 ** 31)), nonce: pick(), encrypt: pick() });
  }
  // The published one (node-webot's own test).
  requests.push({ op: 'signature', token: 'RMNlACHlV5ThzfRlVS4D4', key: SUITES[0].key,
    receive_id: 'x', timestamp: 'timestamp', nonce: 'nonce', encrypt: 'encrypt' });
  const answers = siyu(requests);
  answers.forEach((ans, i) => {
    const r = requests[i];
    assert.equal(ans.ok, true, JSON.stringify(ans));
    assert.equal(ans.signature, wecom.getSignature(r.token, r.timestamp, r.nonce, r.encrypt));
    const legacy = new WXBizMsgCrypt(r.token, r.key, 'x');
    assert.equal(ans.signature, legacy.getSignature(r.timestamp, r.nonce, r.encrypt));
  });
  assert.equal(answers.at(-1).signature, '8edac0945683c119ee71c9f6256d76c48aa08a96');
});

test("siyu's encrypted reply envelope opens with the peers", () => {
  const requests = SUITES.map((s, i) => ({ op: 'reply', token: s.token, key: s.key,
    receive_id: s.id, message: MESSAGES[13 + (i % 3)], timestamp: TS, nonce: 'n' + i }));
  siyu(requests).forEach((ans, i) => {
    const r = requests[i];
    assert.equal(ans.ok, true, JSON.stringify(ans));
    const m = ans.xml.match(new RegExp(
      '^<xml><Encrypt><!\\[CDATA\\[([^\\]]+)\\]\\]></Encrypt>' +
        '<MsgSignature><!\\[CDATA\\[([0-9a-f]{40})\\]\\]></MsgSignature>' +
        '<TimeStamp>(\\d+)</TimeStamp><Nonce><!\\[CDATA\\[([^\\]]+)\\]\\]></Nonce></xml>$',
    ));
    assert.ok(m, ans.xml);
    const [, encrypt, signature, ts, nonce] = m;
    assert.equal(ts, TS);
    assert.equal(nonce, r.nonce);
    assert.equal(signature, wecom.getSignature(r.token, ts, nonce, encrypt));
    assert.equal(wecom.decrypt(r.key, encrypt).message, r.message);
  });
});

test('siyu rejects what the lenient peers let through', () => {
  const s = SUITES[0];
  const base = { token: s.token, key: s.key, receive_id: s.id };
  // Addressed to another corp: the peers decrypt it and report the id; siyu refuses.
  const foreign = wecom.encrypt(s.key, 'hello', 'wx0000000000000000');
  assert.equal(wecom.decrypt(s.key, foreign).message, 'hello');
  // A receiveid that only extends the expected one.
  const extended = wecom.encrypt(s.key, 'hello', s.id + 'x');
  // Padding bytes that disagree with the pad length (peers look only at the last byte), and a
  // pad byte of 0 and of 33.
  const key = Buffer.from(s.key + '=', 'base64');
  const seal = (plain) => {
    const c = createCipheriv('aes-256-cbc', key, key.subarray(0, 16)).setAutoPadding(false);
    return Buffer.concat([c.update(plain), c.final()]).toString('base64');
  };
  const frame = (msg) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(Buffer.byteLength(msg));
    return Buffer.concat([randomBytes(16), len, Buffer.from(msg), Buffer.from(s.id)]);
  };
  const f = frame('hello'); // 43 bytes
  const inconsistent = seal(Buffer.concat([f, Buffer.alloc(20, 7), Buffer.from([21])]));
  const pad0 = seal(Buffer.concat([f, Buffer.alloc(21, 0)]));
  const pad33 = seal(Buffer.concat([f, Buffer.alloc(53 - 33, 1), Buffer.alloc(33, 33)]));
  const corrupt = Buffer.from(wecom.encrypt(s.key, 'hello', s.id), 'base64');
  corrupt[corrupt.length - 17] ^= 1;

  const cases = [
    [foreign, 'BAD_RECEIVE_ID'],
    [extended, 'BAD_RECEIVE_ID'],
    [inconsistent, 'DECRYPT_FAILED'],
    [pad0, 'DECRYPT_FAILED'],
    [pad33, 'DECRYPT_FAILED'],
    [corrupt.toString('base64'), 'DECRYPT_FAILED'],
    [wecom.encrypt(s.key, 'hello', s.id).slice(0, -1), 'BAD_BASE64'],
  ];
  const answers = siyu(cases.map(([encrypt]) => ({ ...base, op: 'decrypt', encrypt, timestamp: TS,
    nonce: NONCE, msg_signature: wecom.getSignature(s.token, TS, NONCE, encrypt) })));
  answers.forEach((ans, i) => {
    assert.equal(ans.ok, false, `case ${i} should fail: ${JSON.stringify(ans)}`);
    assert.equal(ans.code, cases[i][1], `case ${i}: ${JSON.stringify(ans)}`);
  });
  // And a wrong signature is refused before anything is decrypted.
  const [bad] = siyu([{ ...base, op: 'decrypt', encrypt: foreign, timestamp: TS,
    nonce: '1234567891', msg_signature: wecom.getSignature(s.token, TS, NONCE, foreign) }]);
  assert.equal(bad.code, 'BAD_SIGNATURE');
});

test('JS-SDK signatures agree', () => {
  const cases = [{
    ticket:
      'sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg',
    nonceStr: 'Wm3WZYTPz0wzccnW',
    timestamp: 1414587457,
    url: 'http://mp.weixin.qq.com?params=value',
  }];
  for (let i = 0; i < 50; i++) {
    cases.push({ ticket: randomToken() + '-_', nonceStr: randomToken(),
      timestamp: randomInt(2 ** 31),
      url: `https://shop.example.com/p/${randomInt(1e6)}?from=${randomToken()}&a=1` });
  }
  const answers = siyu(cases.map((c) => ({ op: 'jsapi', ticket: c.ticket, noncestr: c.nonceStr,
    timestamp: String(c.timestamp), url: c.url })));
  answers.forEach((ans, i) => {
    assert.equal(ans.ok, true);
    assert.equal(ans.signature, wecom.getJsApiSignature(cases[i]).signature);
  });
  assert.equal(answers[0].signature, '0f9de62fce790f9a083d5c99e95740ceb90c27ed');
});
