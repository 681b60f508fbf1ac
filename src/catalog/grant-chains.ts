/**
 * How long the chain is from each key: the key itself, then `next` of it, and so on until
 * `next` has none. Grant-option chains are followed this way (a grant, then the grant that
 * gives its grantor the option), and any login may build them as long as it likes: each
 * key is walked once over all the calls (lengths are kept), and a circle (a role holding
 * its option from several grantors can close one) ends where the walk meets itself.
 */
export function chainLength<K>(next: (key: K) => K | undefined): (key: K) => number {
  const lengths = new Map<K, number>();
  return (start) => {
    const path: K[] = [];
    const onPath = new Set<K>();
    let at: K | undefined = start;
    while (at !== undefined && !lengths.has(at) && !onPath.has(at)) {
      path.push(at);
      onPath.add(at);
      at = next(at);
    }
    let length = at === undefined ? 0 : (lengths.get(at) ?? 0);
    for (let i = path.length - 1; i >= 0; i--) lengths.set(path[i] as K, ++length);
    return lengths.get(start) as number;
  };
}
