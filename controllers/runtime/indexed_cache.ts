/**
 * An informer's store: objects by cache key, plus named secondary indexes (client-go's
 * Indexer, in small). An index function gives the index values of an object; the store keeps,
 * for every value, the keys of the objects that have it, and updates that on every set and
 * delete, so a lookup costs the number of matches instead of a scan of the whole store.
 */

/** The index values of an object (e.g. the uids of its owners); no value: not in the index. */
export type IndexFn<T> = (obj: T) => readonly string[];

interface Index<T> {
  fn: IndexFn<T>;
  /** Index value → cache keys. */
  keys: Map<string, Set<string>>;
  /**
   * Cache key → the values it was indexed under: removal does not call `fn` again, so an
   * object changed in place by a reader cannot leave its old values behind.
   */
  values: Map<string, readonly string[]>;
}

export class IndexedCache<T> {
  readonly #items = new Map<string, T>();
  readonly #indexes = new Map<string, Index<T>>();

  get(key: string): T | undefined {
    return this.#items.get(key);
  }

  has(key: string): boolean {
    return this.#items.has(key);
  }

  values(): IterableIterator<T> {
    return this.#items.values();
  }

  entries(): IterableIterator<[string, T]> {
    return this.#items.entries();
  }

  get size(): number {
    return this.#items.size;
  }

  set(key: string, obj: T): void {
    if (this.#items.has(key)) this.#unindex(key);
    this.#items.set(key, obj);
    for (const ix of this.#indexes.values()) add(ix, key, obj);
  }

  delete(key: string): void {
    if (!this.#items.has(key)) return;
    this.#unindex(key);
    this.#items.delete(key);
  }

  /**
   * Adds index `name`, built at once from what the store holds. Adding the same name with the
   * same function again does nothing (shared informers are asked by every controller that reads
   * them); the same name with another function is a programming error.
   */
  addIndex(name: string, fn: IndexFn<T>): void {
    const existing = this.#indexes.get(name);
    if (existing) {
      if (existing.fn !== fn) throw new Error(`Index "${name}" exists with another function`);
      return;
    }
    const ix: Index<T> = { fn, keys: new Map(), values: new Map() };
    for (const [key, obj] of this.#items) add(ix, key, obj);
    this.#indexes.set(name, ix);
  }

  hasIndex(name: string): boolean {
    return this.#indexes.has(name);
  }

  /** The objects whose index `name` holds `value`, in no particular order. */
  byIndex(name: string, value: string): T[] {
    const ix = this.#indexes.get(name);
    if (!ix) throw new Error(`No index "${name}" on this informer`);
    const out: T[] = [];
    for (const key of ix.keys.get(value) ?? []) {
      const obj = this.#items.get(key);
      if (obj !== undefined) out.push(obj);
    }
    return out;
  }

  /** How many values index `name` holds (tests check that deleted objects leave none behind). */
  indexSize(name: string): number {
    return this.#indexes.get(name)?.keys.size ?? 0;
  }

  #unindex(key: string): void {
    for (const ix of this.#indexes.values()) {
      const old = ix.values.get(key) ?? [];
      ix.values.delete(key);
      for (const v of old) {
        const set = ix.keys.get(v);
        if (!set) continue;
        set.delete(key);
        if (set.size === 0) ix.keys.delete(v);
      }
    }
  }
}

function add<T>(ix: Index<T>, key: string, obj: T): void {
  const values = [...new Set(ix.fn(obj))];
  if (values.length) ix.values.set(key, values);
  for (const v of values) {
    let set = ix.keys.get(v);
    if (!set) ix.keys.set(v, set = new Set());
    set.add(key);
  }
}
