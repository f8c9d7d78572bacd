// The format library's public surface.
export * from './constants.js';
export * from './bytes.js';
export * from './crc32c.js';
export * from './superblock.js';
export * from './inode.js';
export * from './dirent.js';
export * from './xattr.js';
export * from './chunk-index.js';
export * from './device-slot.js';
export * from './rafs-superblock.js';
export * from './blob-table.js';
export * from './chunk-table.js';
export * from './blob-meta-header.js';
export * from './chunk-info.js';
export * from './toc.js';
export * from './bootstrap.js';
