// Shapes shared by both widgets' wire types (js/studio/types.ts, js/dashboard/types.ts).

/** `{}`: what Python sends in place of a `T` while it has none (no plan yet, no adapter...).
 * Every key of `T` is absent, so a view that tests one (`x.rows?.length`) reads undefined. */
export type Empty<T> = { [K in keyof T]?: never };
