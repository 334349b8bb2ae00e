import type { Config } from '../../config/load.ts';

/**
 * The community's own look (`branding.*`): its name in every page's header and title and in the
 * logout question, its logo, its accent colour on buttons and focus rings, and where to ask for help.
 */
export interface Branding {
  name: string;
  logoUrl: string | null;
  /** `#rrggbb`. */
  accentColor: string;
  /** Text on the accent colour: black or white, whichever contrasts more (WCAG relative luminance). */
  accentTextColor: string;
  /** The accent when it is readable as text on white (contrast ≥ 4.5), a dark default otherwise. */
  linkColor: string;
  /**
   * The edge of a button filled with the accent: the accent itself when it stands out from the white
   * page (contrast ≥ 3, WCAG 1.4.11), otherwise the text colour on it, so that a yellow or white
   * button is still seen as a button.
   */
  accentEdgeColor: string;
  supportUrl: string | null;
}

export const DEFAULT_BRANDING_NAME = 'aa-oidc';
export const DEFAULT_ACCENT_COLOR = '#2459d4';
const FALLBACK_LINK_COLOR = '#1f4fbf';

export function brandingFrom(config: Pick<Config, 'branding'>): Branding {
  const accent = expandHex(config.branding.accentColor);
  const accentTextColor =
    contrastRatio(accent, '#000000') >= contrastRatio(accent, '#ffffff') ? '#000000' : '#ffffff';
  return {
    name: config.branding.name,
    logoUrl: config.branding.logoUrl ?? null,
    accentColor: accent,
    accentTextColor,
    accentEdgeColor: contrastRatio(accent, '#ffffff') >= 3 ? accent : accentTextColor,
    linkColor: contrastRatio(accent, '#ffffff') >= 4.5 ? accent : FALLBACK_LINK_COLOR,
    supportUrl: config.branding.supportUrl ?? null,
  };
}

/** `#abc` → `#aabbcc`, lower case. */
export function expandHex(color: string): string {
  const hex = color.replace(/^#/, '').toLowerCase();
  return `#${hex.length === 3 ? [...hex].map((digit) => digit + digit).join('') : hex}`;
}

/** WCAG 2 relative luminance of `#rrggbb`. */
function luminance(color: string): number {
  const channels = [1, 3, 5].map((start) => Number.parseInt(color.slice(start, start + 2), 16) / 255);
  const [r, g, b] = channels.map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)) as [
    number,
    number,
    number,
  ];
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

/** WCAG 2 contrast ratio of two `#rrggbb` colours (1 to 21). */
export function contrastRatio(a: string, b: string): number {
  const [light, dark] = [luminance(a), luminance(b)].sort((x, y) => y - x) as [number, number];
  return (light + 0.05) / (dark + 0.05);
}
