// Security mail as a mail client reads it: with no SMTP server the server under test writes
// each message as an `.eml` file under LIFELINE_E2E_MAIL_DIR (global-setup.ts); these read
// them, headers and parts decoded, and wait for one to arrive.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from './fixtures';

/** One message as a mail client shows it: headers decoded, parts decoded. */
export type Mail = { file: string; to: string; subject: string; text: string; html: string; raw: string };

/** `Subject: =?utf-8?b?…?=` and `=?utf-8?q?…?=` as text. */
function decodeWords(value: string): string {
  return value.replace(/=\?[^?]+\?([bq])\?([^?]*)\?=\s*/gi, (_, kind: string, data: string) =>
    kind.toLowerCase() === 'b'
      ? Buffer.from(data, 'base64').toString('utf8')
      : quotedPrintable(data.replace(/_/g, ' ')),
  );
}

/** Quoted-printable as text: soft line breaks (`=` at a line's end) joined, `=XX` as bytes. */
function quotedPrintable(body: string): string {
  const joined = body.replace(/=\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < joined.length; i++) {
    const escape = joined.slice(i + 1, i + 3);
    if (joined[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(escape)) {
      bytes.push(parseInt(escape, 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(joined[i], 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** A header block (unfolded) as lower-cased names and values. */
function headersOf(block: string): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const line of block.replace(/\n[ \t]+/g, ' ').split('\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return headers;
}

/** The decoded text parts of an entity, by content type; multiparts are walked. */
function partsOf(entity: string): { type: string; body: string }[] {
  const split = entity.indexOf('\n\n');
  const headers = headersOf(split < 0 ? entity : entity.slice(0, split));
  const body = split < 0 ? '' : entity.slice(split + 2);
  const type = (headers['content-type'] ?? 'text/plain').split(';')[0].trim().toLowerCase();
  if (type.startsWith('multipart/')) {
    const boundary = headers['content-type'].match(/boundary="?([^";]+)"?/i)?.[1];
    if (!boundary) throw new Error(`a multipart with no boundary: ${headers['content-type']}`);
    return body
      .split(`--${boundary}`)
      .slice(1)
      .filter((part) => !part.startsWith('--'))
      .flatMap((part) => partsOf(part.replace(/^\n/, '')));
  }
  const encoding = (headers['content-transfer-encoding'] ?? '7bit').toLowerCase();
  const decoded =
    encoding === 'quoted-printable'
      ? quotedPrintable(body)
      : encoding === 'base64'
        ? Buffer.from(body, 'base64').toString('utf8')
        : body;
  return [{ type, body: decoded }];
}

function readMail(file: string): Mail {
  const raw = readFileSync(file, 'utf8').replace(/\r\n/g, '\n');
  const headers = headersOf(raw.slice(0, raw.indexOf('\n\n')));
  const parts = partsOf(raw);
  return {
    file,
    to: decodeWords(headers['to'] ?? ''),
    subject: decodeWords(headers['subject'] ?? ''),
    text: parts.find((p) => p.type === 'text/plain')?.body ?? '',
    html: parts.find((p) => p.type === 'text/html')?.body ?? '',
    raw,
  };
}

/** Every message the server has written so far. */
export function mailbox(): Mail[] {
  const folder = process.env.LIFELINE_E2E_MAIL_DIR;
  if (!folder) throw new Error('LIFELINE_E2E_MAIL_DIR is not set: global-setup.ts did not run');
  // `.<key>.partial` files are messages still being written.
  return readdirSync(folder)
    .filter((name) => name.endsWith('.eml') && !name.startsWith('.'))
    .map((name) => readMail(path.join(folder, name)));
}

/** The one message to `to` whose subject matches, once the delivery worker has written it. */
export async function mailTo(to: string, subject: RegExp): Promise<Mail> {
  const matching = () => mailbox().filter((mail) => mail.to.includes(to) && subject.test(mail.subject));
  await expect
    .poll(() => matching().length, { message: `a message to ${to} with subject ${subject}`, timeout: 20_000 })
    .toBeGreaterThan(0);
  const found = matching();
  expect(found, `one message to ${to} with subject ${subject}`).toHaveLength(1);
  return found[0];
}

