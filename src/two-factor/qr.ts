import encodeQR from 'qr';

/**
 * Error correction, most first: `medium` survives more damage to the printed or photographed code,
 * `low` holds about a quarter more text (2,953 bytes against 2,331) for an otpauth URI whose names are
 * long (a community's name in CJK letters, say, each nine characters once percent-encoded).
 */
const ERROR_CORRECTION = ['medium', 'low'] as const;

/** The dark modules of `text`'s QR code, or undefined when no QR code holds it. */
function modulesOf(text: string): boolean[][] | undefined {
  for (const ecc of ERROR_CORRECTION) {
    try {
      return encodeQR(text, 'raw', { ecc, border: 4 });
    } catch (error) {
      if (!(error instanceof Error && /capacity overflow/i.test(error.message))) throw error;
    }
  }
  return undefined;
}

const escapeText = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);

/**
 * A QR code as inline SVG (no image request, nothing for a content security policy to allow): one
 * path of dark modules on a white square with the quiet zone, scaled by the page. The text is also
 * shown beside it for people who cannot scan. A text too long for any QR code (an otpauth URI of very
 * long names) gets a note in its place, to type the key shown beside it: never a failed page.
 */
export function qrSvg(text: string, label: string): string {
  const modules = modulesOf(text);
  if (!modules)
    return '<p class="note">The names in this account are too long for a QR code: add it in your app by typing the key below.</p>';
  const size = modules.length;
  let path = '';
  modules.forEach((row, y) => {
    row.forEach((dark, x) => {
      if (dark) path += `M${x} ${y}h1v1h-1z`;
    });
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${size} ${size}" role="img" aria-label="${escapeText(label)}" shape-rendering="crispEdges"><rect width="${size}" height="${size}" fill="#fff"/><path d="${path}" fill="#000"/></svg>`;
}
