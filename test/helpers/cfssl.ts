// The throwaway CFSSL CA on loopback lives with the developer tools (scripts/lib/cfssl.ts).
export * from "../../scripts/lib/cfssl.js";
