import net from 'node:net';

/**
 * Addresses the install step's egress must never reach whatever a name resolves to: the
 * worker host itself (loopback, unspecified), the cloud metadata services (link-local,
 * AWS's fd00:ec2::254), the private networks the host sits on, and multicast. Checked on the
 * address actually dialled, so a name that resolves to the host (DNS rebinding) gets nowhere.
 */
const FORBIDDEN: ReadonlyArray<readonly [string, number, 'ipv4' | 'ipv6', string]> = [
  // The metadata services first: they sit inside ranges an operator may open for a mirror.
  ['fd00:ec2::254', 128, 'ipv6', 'cloud metadata'],
  ['100.100.100.200', 32, 'ipv4', 'cloud metadata'],
  ['168.63.129.16', 32, 'ipv4', 'cloud metadata'],
  ['0.0.0.0', 8, 'ipv4', 'unspecified'],
  ['127.0.0.0', 8, 'ipv4', 'loopback'],
  ['10.0.0.0', 8, 'ipv4', 'private'],
  ['100.64.0.0', 10, 'ipv4', 'private (carrier-grade NAT)'],
  ['169.254.0.0', 16, 'ipv4', 'link-local (cloud metadata)'],
  ['172.16.0.0', 12, 'ipv4', 'private'],
  ['192.168.0.0', 16, 'ipv4', 'private'],
  ['224.0.0.0', 4, 'ipv4', 'multicast'],
  ['240.0.0.0', 4, 'ipv4', 'reserved'],
  ['::', 128, 'ipv6', 'unspecified'],
  ['::1', 128, 'ipv6', 'loopback'],
  ['fe80::', 10, 'ipv6', 'link-local'],
  ['fc00::', 7, 'ipv6', 'private (unique local)'],
  ['ff00::', 8, 'ipv6', 'multicast'],
];

const lists = FORBIDDEN.map(([addr, prefix, family, why]) => {
  const list = new net.BlockList();
  list.addSubnet(addr, prefix, family);
  return { list, family, why };
});

/** An IPv4 address an IPv6 one carries (mapped ::ffff:a.b.c.d, compatible ::a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16), else undefined. */
function embeddedIpv4(ip: string): string | undefined {
  const lower = ip.toLowerCase();
  const dotted = /^(?:::ffff:|::|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1];
  const words = expandIpv6(lower);
  if (!words) return undefined;
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
  const zero = (from: number, to: number) => words.slice(from, to).every((w) => w === 0);
  if (zero(0, 5) && words[5] === 0xffff) return v4(words[6]!, words[7]!);
  if (words[0] === 0x64 && words[1] === 0xff9b && zero(2, 6)) return v4(words[6]!, words[7]!);
  if (words[0] === 0x2002) return v4(words[1]!, words[2]!);
  // ::a.b.c.d in hex form (deprecated "compatible"), but not :: or ::1 themselves.
  if (zero(0, 6) && (words[6]! > 0 || words[7]! > 1)) return v4(words[6]!, words[7]!);
  return undefined;
}

function expandIpv6(ip: string): number[] | undefined {
  if (!net.isIPv6(ip) || ip.includes('.')) return undefined;
  const [head = '', tail] = ip.split('::');
  const parse = (s: string) => (s ? s.split(':').map((w) => parseInt(w, 16)) : []);
  const h = parse(head);
  const t = tail === undefined ? [] : parse(tail);
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  return [...h, ...new Array<number>(fill).fill(0), ...t];
}

/**
 * Reads an operator's list of private networks (`10.1.0.0/16`, `fd12::/48`, an address
 * alone); throws naming a bad entry, or one that covers loopback, link-local or metadata.
 */
export function privateNetworkList(cidrs: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  for (const entry of cidrs) {
    const [addr = '', prefixText] = entry.trim().split('/');
    const family = net.isIPv4(addr) ? 'ipv4' : net.isIPv6(addr) ? 'ipv6' : undefined;
    const prefix = prefixText === undefined ? (family === 'ipv4' ? 32 : 128) : Number(prefixText);
    if (
      !family ||
      !Number.isInteger(prefix) ||
      prefix < (family === 'ipv4' ? 8 : 16) ||
      prefix > (family === 'ipv4' ? 32 : 128)
    ) {
      throw new Error(`"${entry}" is not a network address with a prefix of at least /8 (IPv4) or /16 (IPv6)`);
    }
    const why = forbiddenAddress(addr);
    if (!why?.startsWith('private'))
      throw new Error(
        `"${entry}" is not in a private range (its address is ${why ?? 'public'}): only private networks can be opened`,
      );
    list.addSubnet(addr, prefix, family);
  }
  return list;
}

/**
 * Why the egress proxy refuses to dial `ip` ("loopback", "private", …), or undefined when it
 * may. Private addresses inside `privateOk` (the operator's own registry networks) may be dialled.
 */
export function forbiddenAddress(ip: string, privateOk?: net.BlockList): string | undefined {
  const family = net.isIPv4(ip) ? 'ipv4' : net.isIPv6(ip) ? 'ipv6' : undefined;
  if (!family) return 'not an IP address';
  const v4 = family === 'ipv6' ? embeddedIpv4(ip) : undefined;
  if (v4 !== undefined) {
    const inner = forbiddenAddress(v4, privateOk);
    return inner && `${inner} (as ${ip})`;
  }
  if (ip.includes('%')) return 'scoped (zone) address';
  for (const { list, family: f, why } of lists) {
    if (f === family && list.check(ip, family))
      return why.startsWith('private') && privateOk?.check(ip, family) ? undefined : why;
  }
  return undefined;
}
