/** The release version, set by the release build; "dev" otherwise. */
export const VERSION = "0.1.0-dev";
