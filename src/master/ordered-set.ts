interface Node<T> {
  value: T;
  prev: Node<T> | undefined;
  next: Node<T> | undefined;
}

/**
 * A set that keeps the order values were (re)inserted in, with O(1) insert at the back,
 * delete, and first/last: the least and most recently touched. A Map alone keeps insertion
 * order but cannot be read from its back.
 */
export class OrderedSet<T> {
  private readonly nodes = new Map<T, Node<T>>();
  private head: Node<T> | undefined;
  private tail: Node<T> | undefined;

  get size(): number {
    return this.nodes.size;
  }

  has(value: T): boolean {
    return this.nodes.has(value);
  }

  /** Puts `value` at the back, moving it there if present. */
  pushBack(value: T): void {
    this.delete(value);
    const node: Node<T> = { value, prev: this.tail, next: undefined };
    if (this.tail) this.tail.next = node;
    else this.head = node;
    this.tail = node;
    this.nodes.set(value, node);
  }

  delete(value: T): boolean {
    const node = this.nodes.get(value);
    if (!node) return false;
    if (node.prev) node.prev.next = node.next;
    else this.head = node.next;
    if (node.next) node.next.prev = node.prev;
    else this.tail = node.prev;
    this.nodes.delete(value);
    return true;
  }

  /** Front to back: oldest (re)insertion first. */
  *fromFront(): IterableIterator<T> {
    for (let n = this.head; n; n = n.next) yield n.value;
  }

  /** Back to front: newest (re)insertion first. */
  *fromBack(): IterableIterator<T> {
    for (let n = this.tail; n; n = n.prev) yield n.value;
  }
}
